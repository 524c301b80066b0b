"""Users and their passwords: PBKDF2-SHA256 hashes in the line configuration, never plain text.

`hash_password` makes the string `depline user hash` prints for the configuration file;
`verify_password` checks a login against it in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from controller.config.line_config import LineConfig, UserConfig

ITERATIONS = 200_000


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join(
        ["pbkdf2_sha256", str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def authenticate(config: LineConfig, name: str, password: str) -> UserConfig | None:
    """The user if name and password match; None otherwise (and the same time spent either way)."""
    user = next((u for u in config.users if u.name == name), None)
    stored = user.password_hash if user else hash_password("", iterations=ITERATIONS, salt=b"\0" * 16)
    ok = verify_password(password, stored)
    return user if user is not None and ok else None
