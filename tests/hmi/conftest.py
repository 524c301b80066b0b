"""The browser tests' common setting: how long an assertion on the page waits.

Playwright's `expect` waits 5 s by default. A page here follows a service that shares the machine with
the rest of the suite (four workers on two cores, a simulated line in each), and an answer that takes
a second on a quiet machine was seen taking longer than 5 under `make test`. A passing assertion
returns as soon as it holds, so the longer wait costs only a failing one its time.
"""

from __future__ import annotations

from playwright.async_api import expect

EXPECT_TIMEOUT_MS = 20_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)
