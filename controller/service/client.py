"""The line service's HTTP API as the command line uses it: JSON in and out, one line per failure.

`depline status`, `alarms` and `batch --url` are clients of a running `depline run`; they read and
act through the same API as the HMI, logged in like a person at the HMI. Synchronous on purpose:
a command-line client has nothing else to do while it waits, and every call is bounded by a timeout.
Passwords never come from the command line (a process list shows it): from DEPLINE_USER /
DEPLINE_PASSWORD, a credentials file, or a prompt on the terminal.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from controller.errors import UserError

DEFAULT_URL: Final = "http://127.0.0.1:8080"  # the embedded standard line's [hmi]
TIMEOUT_S: Final = 5.0


@dataclass
class ServiceClient:
    url: str
    token: str | None = None
    timeout_s: float = TIMEOUT_S
    user: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise UserError(f"--url {self.url!r}: give the service's http:// address, e.g. {DEFAULT_URL}")
        self.url = self.url.rstrip("/")

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, body)

    def reachable(self) -> bool:
        try:  # not /api/health: a failed line answers it 503, and is still there to be talked to
            self.get("/api/mode")
        except UserError:
            return False
        return True

    def log_in(self, credentials: Path | None = None) -> str:
        user, password = read_credentials(credentials)
        answer = self.post("/api/login", {"user": user, "password": password})
        self.token, self.user = str(answer["token"]), user
        return user

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        full = self.url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(full, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # the scheme is checked
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise UserError(f"{method} {full}: HTTP {exc.code}: {_detail(exc)}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            raise UserError(f"cannot reach the line service at {self.url}: {text}") from None
        except TimeoutError:
            waited = f"{self.timeout_s:g} s"
            raise UserError(f"the line service at {self.url} did not answer within {waited}") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{full}: unreadable answer: {exc}") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    """The API's own words for a refusal (FastAPI's {"detail": ...}), else the HTTP reason."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return str(exc.reason)
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else str(exc.reason)


def read_credentials(path: Path | None = None) -> tuple[str, str]:
    """User and password: from `path` (TOML with `user` and `password`), DEPLINE_USER and
    DEPLINE_PASSWORD, or asked on the terminal; never from the command line."""
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"{path}: cannot read the credentials: {exc}") from None
        user, password = data.get("user"), data.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or not user:
            raise UserError(f"{path}: needs `user` and `password` (strings)")
        return user, password
    user, password = os.environ.get("DEPLINE_USER", ""), os.environ.get("DEPLINE_PASSWORD")
    if user and password is not None:
        return user, password
    if not sys.stdin.isatty():
        raise UserError(
            "log in to the line service: set DEPLINE_USER and DEPLINE_PASSWORD, give --credentials FILE, "
            "or run on a terminal to be asked"
        )
    user = user or input("depline user: ").strip()
    return user, getpass.getpass(f"password for {user}: ")
