"""A throwaway certificate authority made by openssl for the TLS tests: a CA, a broker certificate for
localhost/127.0.0.1, a client certificate, and a second CA that signed neither (the wrong trust anchor).
Elliptic-curve keys, because they are made in milliseconds."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pki:
    ca: Path
    broker_cert: Path
    broker_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(name: str, cwd: Path) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=cwd,
    )  # fmt: skip


def _signed(name: str, ca: str, cwd: Path, alt_names: str = "") -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd,
    )  # fmt: skip
    ext = cwd / f"{name}.ext"
    ext.write_text(f"subjectAltName={alt_names}\n" if alt_names else "basicConstraints=CA:FALSE\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name, cwd=cwd,
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed (Debian package openssl; `make system-packages`)")
    d = directory
    d.mkdir(parents=True)
    _ca("ca", d)
    _ca("rogue", d)
    _signed("broker", "ca", d, alt_names="DNS:localhost,IP:127.0.0.1")
    _signed("bridge", "ca", d)
    return Pki(
        d / "ca.crt", d / "broker.crt", d / "broker.key", d / "bridge.crt", d / "bridge.key", d / "rogue.crt"
    )
