"""What a job or a batch proved, from the historian's records: the exposure certificate.

The line's promise (DESIGN.md, top) is that no air-sensitive item ever met a non-inert atmosphere,
*with the sensor evidence that proves it*. A certificate is that proof for one job: the recipe, who
confirmed what and after how long, and for the electrode, its containers and its targets every ledger
entry with its readings, the time each spent exposed to something not inert (zero for a good
electrode) and a one-line verdict; the job's events merged with what the line recorded meanwhile
(alarms first-out marked and who acknowledged them, refused and safe-action commands, mode changes);
and a plot of the pressure, frost point and substrate temperature of every space of the line over the
job, the electrode's moves marked.

The modules, in the order a certificate is made:

- `record`: the gathered certificate as frozen dataclasses (`RunReport`, `JobReport`, `ItemReport`, ...).
- `gather`: reading it from the historian (`gather_report`), each item's verdict and the plot's data.
- `wording`: how times, durations and sensor evidence are written, shared by verdicts and renderers.
- `events`: the one-line wording of every recorded event, shared with `depline timeline`.
- `text`: the certificate as plain text, for the terminal.
- `plot`: the plot laid out once as plain shapes, for both the HTML and the PDF.
- `html_page`: the certificate as one self-contained HTML page, the plot as inline SVG.
- `pdf`: the certificate as a PDF (reportlab, imported only when a PDF is drawn).
- `command`: `depline report RUN`, which prints the text and writes the HTML and PDF where asked.
"""
