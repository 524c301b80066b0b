"""The demo users' passwords are published in the README: they may log in on loopback only.

The standard line ships users whose passwords anyone can read (op1-demo, eng1-demo, maint1-demo). A
site that copies the file, binds the HMI to the plant network and forgets to replace those hashes
hands the line's commands to anyone on that network. So serving the HMI beyond loopback is refused
while any configured user's hash still verifies one of the published passwords, whatever the user is
now called and whatever salt `depline user hash` gave it.
"""

from __future__ import annotations

import functools
import ipaddress

from controller.config.line_config import LineConfig
from controller.errors import ConfigFileError
from controller.users.passwords import verify_password

DEMO_PASSWORDS = ("op1-demo", "eng1-demo", "maint1-demo")
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Only a literal loopback address or "localhost"; any other name may resolve to the network."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def users_with_demo_passwords(config: LineConfig) -> list[str]:
    return [u.name for u in config.users if any(_verifies(p, u.password_hash) for p in DEMO_PASSWORDS)]


def refuse_demo_passwords_beyond_loopback(config: LineConfig, host: str, field: str = "hmi.host") -> None:
    """Raise when the HMI would listen on `host` (not loopback) while a demo password is in force."""
    if is_loopback(host):
        return
    users = users_with_demo_passwords(config)
    if users:
        raise ConfigFileError(
            config.path,
            field,
            host,
            "the HMI serves beyond loopback only when no user has a published demo password "
            f"({', '.join(users)} still do): replace their password_hash (depline user hash) "
            "or serve on 127.0.0.1",
        )


@functools.lru_cache(maxsize=64)
def _verifies(password: str, stored: str) -> bool:
    """Cached: each check costs a full PBKDF2 run, and config check may see the same hashes often."""
    return verify_password(password, stored)
