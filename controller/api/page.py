"""The operator HMI page, served by the controller itself at `/`.

Why it is shaped this way:

- **No separate web server and no network at the line.** The page, its script and its style sheet are
  package data (`controller/api/hmi/`), read once when this module loads and served from memory, so a
  request never touches the disk while the event loop runs the plant.
- **Nothing from elsewhere.** A Content-Security-Policy of 'self' means the browser refuses any asset a
  later edit might pull from a CDN: the page works offline or not at all, and a test sees it.
- **Always the current page.** `no-cache` makes a screen that stays open for a shift revalidate after a
  controller update instead of running yesterday's script against today's API.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

ASSET_TYPES: Final = {
    "index.html": "text/html; charset=utf-8",
    "hmi.js": "text/javascript; charset=utf-8",
    "operations.js": "text/javascript; charset=utf-8",
    "hmi.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _load_assets() -> dict[str, bytes]:
    folder = resources.files("controller.api") / "hmi"
    return {name: (folder / name).read_bytes() for name in ASSET_TYPES}


_ASSETS: Final = _load_assets()
router = APIRouter(include_in_schema=False)


def _asset(name: str) -> Response:
    body = _ASSETS.get(name)
    if body is None:
        raise HTTPException(404, f"no HMI asset {name!r}")
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body, media_type=ASSET_TYPES[name], headers=headers)


@router.get("/")
async def page() -> Response:
    return _asset("index.html")


@router.get("/hmi/{name}")
async def asset(name: str) -> Response:
    return _asset(name)
