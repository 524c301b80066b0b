"""The flight recorder: what a maintenance engineer asks of the records after the fact.

- `history`: which batches and jobs ran, with their outcome and each electrode's verdict; an item id
  finds every job it went through (`depline history`).
- `sample_export`: every recorded reading of a space or a channel over a range, as CSV or JSON lines
  (`depline samples`).
- `time_range`: how a person writes an instant on the command line.
- `commands`: the CLI of the above.

It reads through `Historian.reader` only, so it is safe beside a running line, and it sits above the
certificates (`controller.reports`) because a listing's verdicts are the certificates' verdicts.
"""
