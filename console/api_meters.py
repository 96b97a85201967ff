"""The JSON API's meters: search, the meter and its open round, its timeline, confirm-support and the meter's
preferred provider."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from console import actions, queries
from console.actions import tenant
from console.api import CsrfHeader
from console.auth import CurrentUser, check_csrf
from schemas.envelope import MeterNumber

router = APIRouter(prefix="/api/v1", tags=["ppu"])


class ProviderSupport(BaseModel):
    provider_id: str
    electrum_id: str | None = Field(description="the guide's Provider ID: the institution id Electrum assigned")
    provider: str
    status: Literal["supported", "not_supported", "unconfirmed"]
    last_response_at: datetime | None
    awaiting_confirmation: bool
    details: dict[str, Any] | None = Field(
        default=None, description="what the provider's last answer said: utility, customer, min/max amount"
    )


class OpenRoundOut(BaseModel):
    reason: str
    opened_at: datetime
    deadline: datetime
    answered: list[str] = Field(description="the institution's providers that answered this round")
    pending: list[str] = Field(description="the institution's providers still to answer")
    waiting_attempts: int = Field(description="the institution's purchases waiting on the round")


class MeterOut(BaseModel):
    meter_number: str
    utility: str
    blocked: bool
    marked_for_rebroadcast: bool
    preferred_provider_id: str | None
    providers: list[ProviderSupport]
    decisions: list[dict[str, Any]]
    open_round: OpenRoundOut | None = None


class CommandOut(BaseModel):
    command_id: uuid.UUID
    outcome: Literal["marked", "already_marked"] | None = Field(
        description="the command consumer's result; null when it did not answer in time (the command still counts)"
    )


class MeterPreferenceIn(BaseModel):
    provider_id: str | None = Field(default=None, max_length=40)


@router.get("/meters")
async def search(request: Request, user: CurrentUser, q: str = "") -> list[str]:
    async with request.app.state.pool.acquire() as conn:
        return await queries.search_meters(conn, q)


@router.get("/meters/{meter_number}")
async def meter(request: Request, user: CurrentUser, meter_number: MeterNumber) -> MeterOut:
    async with request.app.state.pool.acquire() as conn:
        view = await tenant(user).meter(conn, meter_number)
    if view is None:
        raise HTTPException(404, "unknown meter")
    return MeterOut(
        meter_number=view.meter_number,
        utility=view.utility,
        blocked=view.blocked,
        marked_for_rebroadcast=view.marked_for_rebroadcast,
        preferred_provider_id=view.preferred_provider_id,
        providers=[
            ProviderSupport(
                provider_id=p.provider_id,
                electrum_id=p.electrum_id,
                provider=p.name,
                status=p.status,
                last_response_at=p.last_response_at,
                awaiting_confirmation=p.awaiting_confirmation,
                details=p.details,
            )
            for p in view.providers
        ],
        decisions=[{k: (str(v) if k == "attempt_id" else v) for k, v in dict(d).items()} for d in view.decisions],
        open_round=OpenRoundOut(**vars(view.open_round)) if view.open_round else None,
    )


class TimelineEntry(BaseModel):
    at: datetime
    kind: Literal["round", "answer", "decision", "command"]
    what: str
    who: str | None
    detail: str | None


class TimelineOut(BaseModel):
    entries: list[TimelineEntry] = Field(description="newest first")
    older: datetime | None = Field(description="pass as `before` for the next page; null on the last page")


@router.get("/meters/{meter_number}/timeline")
async def timeline(
    request: Request,
    user: CurrentUser,
    meter_number: MeterNumber,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TimelineOut:
    """The meter's rounds, answers, decisions and commands as this institution may see them, newest first."""
    async with request.app.state.pool.acquire() as conn:
        entries = await tenant(user).timeline(conn, meter_number, before, limit)
    if entries is None:
        raise HTTPException(404, "unknown meter")
    return TimelineOut(
        entries=[TimelineEntry(**vars(e)) for e in entries],
        older=entries[-1].at if len(entries) == limit else None,
    )


@router.post("/meters/{meter_number}/confirm-support", status_code=202)
async def confirm_support(
    request: Request, user: CurrentUser, meter_number: MeterNumber, x_csrf_token: CsrfHeader = None
) -> CommandOut:
    check_csrf(request, x_csrf_token)
    command_id, result = await actions.confirm_support(request.app.state, user, meter_number)
    return CommandOut(command_id=command_id, outcome=result.outcome if result else None)


@router.put("/meters/{meter_number}/preference", status_code=204)
async def meter_preference(
    request: Request,
    user: CurrentUser,
    meter_number: MeterNumber,
    body: MeterPreferenceIn,
    x_csrf_token: CsrfHeader = None,
) -> None:
    check_csrf(request, x_csrf_token)
    async with request.app.state.pool.acquire() as conn:
        await actions.set_meter_preference(conn, user, meter_number, body.provider_id)
