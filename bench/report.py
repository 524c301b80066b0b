"""What every benchmark shares for reporting: its marked section of docs/performance.md, percentiles.

Each benchmark owns one section between `<!-- bench.<name> figures: begin ... -->` and its end marker;
rewriting it never touches the hand-written text or another benchmark's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    begin = f"<!-- bench.{name} figures: begin (rewritten by `python -m bench.{name} --write-docs`) -->"
    return begin, f"<!-- bench.{name} figures: end -->"


def update_section(
    path: Path, name: str, figures: str, *, new_file: str = "# Performance\n", intro: str = ""
) -> None:
    """Replace bench `name`'s section of `path`; append it (after `intro`) if absent."""
    begin, end = markers(name)
    block = f"{begin}\n\n{figures.strip()}\n\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else new_file
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + intro + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); with 50 values p99 lies between
    the two largest, so it is close to the maximum, as it should be for so few samples."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def add_output_options(parser: argparse.ArgumentParser, docs: Path, *, quick_help: str) -> None:
    """--quick, --write-docs and --docs, the same for every benchmark."""
    parser.add_argument("--quick", action="store_true", help=f"{quick_help}: a smoke test, not figures")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"update this benchmark's section of {docs.name}"
    )
    parser.add_argument("--docs", type=Path, default=docs, help="the file --write-docs updates")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, refusing to write smoke-test numbers into the documentation."""
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.quick and args.write_docs:
        parser.error("--quick figures are not figures: refusing --write-docs")
    return args


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine(versions: str = "") -> str:
    """The machine line every figures section opens with; `versions` names the libraries measured."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    line = (
        f"{cores} cores (nproc), {_cpu_model()}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )
    return f"{line}; {versions}" if versions else line


def publish(figures: str, args: argparse.Namespace, update_docs: Callable[[Path, str], None]) -> int:
    """Print the figures and, with --write-docs, put them in the benchmark's section."""
    sys.stdout.write(figures)
    if args.write_docs:
        update_docs(args.docs, figures)
        logging.getLogger("bench").info("figures written to %s", args.docs, extra={"path": str(args.docs)})
    return 0
