"""Bulk Confirm support in the console: the page (paste numbers or upload a CSV) and its API twin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from console import actions
from console.api import CsrfHeader
from console.auth import CurrentUser, check_csrf, require
from console.pages import page
from operations.bulk_confirm import MAX_METERS, OUTCOMES

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["ppu"])


@pages.get("/ppu/bulk-confirm")
async def bulk_form(request: Request, user: CurrentUser) -> HTMLResponse:
    require(user, "operator")
    return page(request, "bulk_confirm.html", user=user, results=None, max_meters=MAX_METERS)


@pages.post("/ppu/bulk-confirm")
async def bulk_submit(
    request: Request,
    user: CurrentUser,
    csrf_token: Annotated[str, Form()],
    meters: Annotated[str, Form()] = "",
    file: UploadFile | None = None,
) -> HTMLResponse:
    check_csrf(request, csrf_token)
    text = meters
    if file is not None and file.filename:
        try:  # the console's body limit already bounds the upload
            text += "\n" + (await file.read()).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HTTPException(422, "the file is not UTF-8 text (a CSV of meter numbers)") from None
    results = await actions.bulk_confirm_support(request.app.state, user, text)
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    return page(request, "bulk_confirm.html", user=user, results=results, counts=counts, max_meters=MAX_METERS)


class BulkIn(BaseModel):
    meter_numbers: list[str] = Field(min_length=1, max_length=MAX_METERS)


class BulkResultOut(BaseModel):
    meter_number: str
    outcome: str = Field(description=f"one of: {', '.join(OUTCOMES)}")
    reason: str | None


@api.post("/confirm-support/bulk")
async def bulk_api(
    request: Request, user: CurrentUser, body: BulkIn, x_csrf_token: CsrfHeader = None
) -> list[BulkResultOut]:
    check_csrf(request, x_csrf_token)
    results = await actions.bulk_confirm_support(request.app.state, user, [m[:40] for m in body.meter_numbers])
    return [BulkResultOut(meter_number=r.meter_number, outcome=r.outcome, reason=r.reason) for r in results]
