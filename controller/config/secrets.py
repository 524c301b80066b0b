"""Passwords kept out of the line file, and out of every line the controller prints.

Why it is built this way:

- **A line file is read by many, a password by few.** The TOML is versioned, diffed and mailed to the
  vendor; the database and broker passwords belong in a file only the service user can read
  (`password_file`) or in a systemd credential (`password_credential`: `LoadCredential=NAME:PATH` in
  the unit, read from `$CREDENTIALS_DIRECTORY/NAME`, the one place the controller reads the
  environment: systemd decides where that directory is). One trailing newline (what `echo` and editors
  leave) is not part of the password.
- **Masking at the exits, not at every call.** A database URL carries its password in its user-info
  part, and it travels through driver exceptions, tracebacks and messages nobody reviewed for it.
  `mask_secrets` rewrites any ``scheme://user:password@`` (and a ``password=`` query field) in a text,
  and is applied where text leaves the process: the log formatters and the CLI's error line. Code that
  shows a URL on purpose shows it masked too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit

from controller.config.reader import TableReader

MASK: Final = "***"
CREDENTIALS_DIRECTORY: Final = "CREDENTIALS_DIRECTORY"
MAX_SECRET_BYTES: Final = 4096

# user-info with a password (`//user:pw@`, the password up to the last @ before the host), or a query
# field named password; the scheme is optional so a URL cut short by a message is masked too
_USERINFO = re.compile(r"(//[^/\s:@'\"]*:)([^\s'\"]*)(@[^@\s/'\"]*)")
_QUERY = re.compile(r"([?&;]password=)([^&;\s'\"]*)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with every URL password (and `password=` query value) replaced by ***."""
    if "@" not in text and "password=" not in text.lower():
        return text
    masked = _USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _QUERY.sub(lambda m: m.group(1) + MASK, masked)


def read_password(t: TableReader) -> str | None:
    """The password a table names by `password_file` or `password_credential` (at most one), or None."""
    has_file, has_credential = t.has("password_file"), t.has("password_credential")
    if has_file and has_credential:
        raise t.fail("password_credential", "<set>", "give password_file or password_credential, not both")
    if has_file:
        return _secret_text(t, "password_file", Path(t.text("password_file")))
    if has_credential:
        name = t.text("password_credential")
        if not name or "/" in name or name in (".", ".."):
            raise t.fail("password_credential", name, "the name of a systemd credential (LoadCredential=)")
        folder = os.environ.get(CREDENTIALS_DIRECTORY)
        if not folder:
            raise t.fail(
                "password_credential",
                name,
                f"${CREDENTIALS_DIRECTORY} is not set: run under systemd with LoadCredential={name}:PATH",
            )
        return _secret_text(t, "password_credential", Path(folder) / name)
    return None


def _secret_text(t: TableReader, key: str, path: Path) -> str:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise t.fail(key, str(path), f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise t.fail(key, str(path), f"a password file holds one line (under {MAX_SECRET_BYTES} bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise t.fail(key, str(path), "is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text or "\n" in text:
        raise t.fail(key, str(path), "must hold the password on one line")
    return text


def url_with_password(t: TableReader, url: str, password: str) -> str:
    """`url` with the password put in its user-info; the URL must name a user and carry no password."""
    parts = urlsplit(url)
    if "@" not in parts.netloc or not parts.username:
        raise t.fail("url", mask_secrets(url), "name the database user (postgresql://USER@host/db)")
    if parts.password is not None:
        raise t.fail("url", mask_secrets(url), "the password comes from the file: leave it out of the url")
    userinfo, host = parts.netloc.rsplit("@", 1)
    netloc = f"{userinfo}:{quote(password, safe='')}@{host}"
    return parts._replace(netloc=netloc).geturl()


__all__ = ["MASK", "mask_secrets", "read_password", "url_with_password"]
