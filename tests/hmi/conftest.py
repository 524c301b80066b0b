"""The one browser every HMI test drives: Debian's Chromium (Playwright's own download cannot be fetched
on the line's machines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hmi.test_hmi_browser import CHROMIUM


@pytest.fixture
def chromium_path() -> str:
    """Fail, never skip, without the browser: a skipped HMI test would pass `make test` untested."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-packages` installs Debian's chromium")
    return CHROMIUM
