"""The operator HMI page, served by the controller itself at `/`.

Why it is shaped this way:

- **No separate web server and no network at the line.** The page, its scripts (native ES modules, one
  per view, no build step) and its style sheet are package data (`controller/api/hmi/`), read once when
  this module loads and served from memory, so a request never touches the disk while the event loop
  runs the plant.
- **Every file of the folder, typed by its suffix.** A browser refuses a module served with any type but
  JavaScript's, so a script is served because it is in the folder, never because someone remembered to
  list it; a file of any other kind is not served at all.
- **Nothing from elsewhere.** A Content-Security-Policy of 'self' means the browser refuses any asset a
  later edit might pull from a CDN: the page works offline or not at all, and a test sees it.
- **Always the current page.** `no-cache` makes a screen that stays open for a shift revalidate after a
  controller update instead of running yesterday's script against today's API.
"""

from __future__ import annotations

from importlib import resources
from pathlib import PurePosixPath
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _load_assets() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("controller.api") / "hmi"
    assets: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        media_type = MEDIA_TYPES.get(PurePosixPath(entry.name).suffix)
        if media_type is not None and entry.is_file():
            assets[entry.name] = (entry.read_bytes(), media_type)
    return assets


_ASSETS: Final = _load_assets()
_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
}
router = APIRouter(include_in_schema=False)


def _asset(name: str) -> Response:
    asset = _ASSETS.get(name)
    if asset is None:
        raise HTTPException(404, f"no HMI asset {name!r}")
    body, media_type = asset
    return Response(body, media_type=media_type, headers=_HEADERS)


@router.get("/")
async def page() -> Response:
    return _asset("index.html")


def marked_page(mode: str) -> Response:
    """The page with `data-mode` on its body: how `hmi.js` knows it runs on a replay, before it asks
    anything (a replay has no live routes to ask)."""
    body, media_type = _ASSETS["index.html"]
    marked = body.replace(b"<body>", f'<body data-mode="{mode}">'.encode(), 1)
    return Response(marked, media_type=media_type, headers=_HEADERS)


@router.get("/hmi/{name}")
async def asset(name: str) -> Response:
    return _asset(name)
