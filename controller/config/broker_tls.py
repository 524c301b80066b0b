"""The TLS context the MQTT bridge connects with, built from `[mqtt]` tls, ca_file, cert_file, key_file.

Why in the configuration layer: the same function that the bridge uses is run when the file is read, so
`depline config check` (and every start) refuses a CA that is not PEM, a key that does not match its
certificate or a file the service user cannot read, with the field's name, instead of the bridge failing
to connect later with an alarm that only says "broker unreachable".
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """`ca_file` "" trusts the system store; `cert_file`/`key_file` (both or neither): client certificate."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


class BrokerTlsError(ValueError):
    """A TLS file is missing, unreadable or not what it should be; `field` names the `[mqtt]` key."""

    def __init__(self, field: str, value: str, why: str) -> None:
        super().__init__(why)
        self.field = field
        self.value = value


def broker_tls_context(tls: BrokerTls) -> ssl.SSLContext:
    """A client context that verifies the broker's certificate and host name (never switched off)."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerTlsError(
            "ca_file", tls.ca_file, f"a readable PEM CA certificate file ({_why(exc)})"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerTlsError(
                "cert_file",
                tls.cert_file,
                f"a readable PEM client certificate whose key is key_file {tls.key_file!r} ({_why(exc)})",
            ) from None
    return context


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
