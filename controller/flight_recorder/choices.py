"""The fixed value sets the flight-recorder commands offer as argparse choices.

Apart from the modules that use them (`history`, `sample_export`), which import the historian: the
`depline` parser is built from these without it.
"""

from __future__ import annotations

from typing import Final

JOB_OUTCOMES: Final = ("done", "rejected", "failed", "aborted", "stopped", "running")  # running: not ended
FORMATS: Final = ("csv", "jsonl")  # of `depline samples`
