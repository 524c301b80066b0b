"""A production job's (or batch's) certificate over the API, for the HMI's end-of-run record.

The same report `depline report` prints, read from the live historian: a page can open a job's
certificate while the line goes on with the next one. Building the plot and the PDF is CPU work, so
it runs in a worker thread and never stalls the loop that polls the plant.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from controller.api.context import Ctx
from controller.errors import UserError
from controller.historian.errors import HistorianUnavailable
from controller.reports.gather import gather_report
from controller.reports.html_page import render_html
from controller.reports.pdf import render_pdf

router = APIRouter()
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


@router.get("/api/reports/{run}.{fmt}", tags=["read"], response_class=Response)
async def get_report(ctx: Ctx, run: str, fmt: Literal["html", "pdf"]) -> Response:
    """The exposure certificate of a job id (B...-J01) or of every job of a batch id (B...)."""
    if ctx.historian is None:
        raise HTTPException(503, "this controller process keeps no records to report from")
    try:
        report = await gather_report(ctx.historian, ctx.controller.config, run)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    except HistorianUnavailable as exc:
        raise HTTPException(503, f"the records cannot be read: {exc}") from None
    if fmt == "html":
        body = (await asyncio.to_thread(render_html, report)).encode("utf-8")
    else:
        body = await asyncio.to_thread(render_pdf, report)
    disposition = f'inline; filename="depline-{run}.{fmt}"'
    return Response(body, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition})
