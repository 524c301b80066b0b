"""`depline batch QUEUE --url URL`: a batch submitted to the running line service and followed there.

The service owns the line (it polls, supervises and records whether or not a batch runs); the
command line is one of its clients, logged in as a person. It starts the queue by name — the queue
files a service may run are the ones in its shipped or configured folders, validated there, so the
file given here must be one of them, byte for byte (its SHA-256 is compared) — then follows the batch
with the same progress bars and summary as an embedded run, and exits with the batch's code: 0 all
done, 1 some failed safe or stopped, 2 bad input. Ctrl-C only detaches the terminal: the batch goes
on in the service (`--attach` follows it again). Glove-work prompts are answered at this terminal
when it is one (Enter confirms, as the logged-in user), in the HMI, or by nobody until someone does.
"""

from __future__ import annotations

import hashlib
import select
import sys
import time
from pathlib import Path
from typing import Any, Final, TextIO

from controller.errors import UserError
from controller.service.batch_report import JobLine, job_end_line, progress_line, summary_lines
from controller.service.client import ServiceClient

POLL_S: Final = 0.5
DETACHED: Final = 130  # the shell's code for "ended by Ctrl-C": the batch itself goes on


def submit(client: ServiceClient, queue: Path) -> str:
    """Start (or resume) the service's copy of `queue`; returns the batch id."""
    try:
        text = queue.read_bytes()
    except OSError as exc:
        raise UserError(f"{queue}: (file) = {str(queue)!r}: cannot be read: {exc.strerror}") from None
    digest = hashlib.sha256(text).hexdigest()
    offered = client.get("/api/batch/queues")
    same = next((q for q in offered if q["name"] == queue.stem), None)
    if same is None:
        names = ", ".join(q["name"] for q in offered) or "none"
        raise UserError(
            f"{queue}: not among the queue files the service at {client.url} may start ({names}); "
            "put it in the line's [sequence] queue_dir there"
        )
    if same["hash"] != digest:
        raise UserError(
            f"{queue}: differs from the service's queue {queue.stem!r} of the same name; "
            "start the one the service holds, or update it there"
        )
    started = client.post("/api/batch/start", {"queue": queue.stem})
    return str(started["id"])


def follow(client: ServiceClient, out: TextIO = sys.stdout, *, answer_prompts: bool = False) -> int:
    """Follow the service's batch to its end; the batch's exit code, or DETACHED on Ctrl-C."""
    announced: set[str] = set()
    ended: set[str] = set()
    last = ""
    try:
        while True:
            view = client.get("/api/batch")
            _announce(view, announced, out)
            _job_ends(view, ended, out)
            if not view["running"]:
                if view["batch"] is None:
                    raise UserError(f"the line service at {client.url} runs no batch: nothing to follow")
                return _summary(view, client, out)
            line = _progress(view)
            if line and line != last:
                print(line, file=out, flush=True)
                last = line
            if answer_prompts:
                _answer_at_terminal(client, out)
            else:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        batch = view["batch"]["id"] if view.get("batch") else "?"
        print(
            f"\ndetached: batch {batch} goes on in the line service at {client.url}; follow it again "
            f"with: depline batch --attach --url {client.url}",
            file=out,
            flush=True,
        )
        return DETACHED


def _announce(view: dict[str, Any], announced: set[str], out: TextIO) -> None:
    batch = view.get("batch")
    if batch and batch["id"] not in announced:
        announced.add(batch["id"])
        print(
            f"depline batch: batch {batch['id']} from {batch['queue_path']} (started by {batch['user']})",
            file=out,
        )


def _job_ends(view: dict[str, Any], ended: set[str], out: TextIO) -> None:
    for job in view["jobs"]:
        if job["outcome"] and job["id"] not in ended:
            ended.add(job["id"])
            print(
                job_end_line(job["position"], job["id"], job["recipe"], job["outcome"], job["message"]),
                file=out,
            )


def _progress(view: dict[str, Any]) -> str:
    current = view.get("current")
    if not current:
        return ""
    return progress_line(
        current["position"],
        current["jobs"],
        current["fraction"],
        current["state"],
        current["phase_title"],
        None,  # plant time is the service's: not known here
    )


def _summary(view: dict[str, Any], client: ServiceClient, out: TextIO) -> int:
    batch = view["batch"]
    jobs = [
        JobLine(j["position"], j["id"], j["recipe"], j["outcome"], j["plant_hours"], j["message"])
        for j in view["jobs"]
    ]
    records = [(j["electrode"], j["exposure"]) for j in view["jobs"]]
    for line in summary_lines(batch["id"], batch["status"], False, jobs, records):
        print(line, file=out)
    if batch["status"] == "stopped":
        print(f"\nstopped; start the same queue again to resume batch {batch['id']}", file=out)
    all_done = batch["status"] == "complete" and all(j["outcome"] == "done" for j in view["jobs"])
    return 0 if all_done else 1


def _answer_at_terminal(client: ServiceClient, out: TextIO) -> None:
    """Show the first open prompt; Enter within a poll period confirms it as the logged-in user."""
    prompts = client.get("/api/prompts")
    if not prompts:
        time.sleep(POLL_S)
        return
    prompt = prompts[0]
    print(f"\n>>> operator: {prompt['prompt']} — press Enter to confirm", file=out, flush=True)
    ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
    if ready:
        sys.stdin.readline()
        client.post(f"/api/prompts/{prompt['key']}/confirm")
