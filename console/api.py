"""The JSON API under /api/v1: what the pages show and do, with the same authorisation (session cookie, and
the session's CSRF token in `X-CSRF-Token` on every write)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

from console import actions, queries
from console.actions import tenant
from console.auth import (
    CurrentUser,
    User,
    audit,
    authenticate,
    check_csrf,
    csrf_token,
    end_session,
    start_session,
)
from schemas.envelope import MeterNumber

router = APIRouter(prefix="/api/v1", tags=["ppu"])
CsrfHeader = Annotated[str | None, Header(alias="X-CSRF-Token")]


class LoginIn(BaseModel):
    institution: str = Field(max_length=40)
    username: str = Field(max_length=100)
    password: str = Field(max_length=200)


class SessionOut(BaseModel):
    institution_id: str
    username: str
    role: str
    csrf_token: str


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


class HealthOut(BaseModel):
    provider_id: str
    electrum_id: str | None
    name: str
    window_minutes: int
    state: str
    response_ratio: float | None
    sent: int
    timeouts: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    last_seen: datetime | None
    detail: str | None = Field(description="MISCONFIGURED: the provider's last refusal")


class PreferenceIn(BaseModel):
    kind: Literal["ranked", "unranked", "excluded"] | None
    rank: int | None = Field(default=None, ge=1, le=1000)
    weight: int = Field(default=1, ge=0, le=1000)


class MeterPreferenceIn(BaseModel):
    provider_id: str | None = Field(default=None, max_length=40)


@router.post("/session")
async def login(request: Request, body: LoginIn, x_csrf_token: CsrfHeader = None) -> SessionOut:
    """Log in; the answer carries the CSRF token for later writes. Needs the pre-login token from GET."""
    check_csrf(request, x_csrf_token)
    address = request.client.host if request.client else "unknown"
    async with request.app.state.pool.acquire() as conn:
        result = await authenticate(conn, body.institution, body.username, body.password, address)
        user = result if isinstance(result, User) else None
        await audit(
            conn,
            user,
            "login",
            body.username,
            "ok" if user else "refused",
            {"address": address, "via": "api"},
            actor=body.username,
            institution_id=body.institution,
        )
        if user is not None:
            await start_session(conn, request, user)
    if user is None:
        raise HTTPException(401, str(result))
    return SessionOut(
        institution_id=user.institution_id, username=user.username, role=user.role, csrf_token=csrf_token(request)
    )


@router.delete("/session", status_code=204)
async def logout(request: Request, user: CurrentUser, x_csrf_token: CsrfHeader = None) -> None:
    """Log out: the session is revoked on the server."""
    check_csrf(request, x_csrf_token)
    async with request.app.state.pool.acquire() as conn:
        await audit(conn, user, "logout", user.username, "ok", {"via": "api"})
        await end_session(conn, request)


@router.get("/session")
async def session(request: Request) -> dict[str, str]:
    """A CSRF token for this (possibly anonymous) session."""
    return {"csrf_token": csrf_token(request)}


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


@router.get("/providers/health")
async def health(request: Request, user: CurrentUser, window_minutes: int = 15) -> list[HealthOut]:
    window_minutes = max(1, min(window_minutes, 24 * 60))
    async with request.app.state.pool.acquire() as conn:
        rows = await tenant(user).health(conn, window_minutes)
    return [
        HealthOut(
            provider_id=h.provider_id,
            electrum_id=h.electrum_id,
            name=h.name,
            window_minutes=h.window_minutes,
            state=h.state,
            response_ratio=h.response_ratio,
            sent=h.sent,
            timeouts=h.timeouts,
            p50_ms=h.p50_ms,
            p95_ms=h.p95_ms,
            p99_ms=h.p99_ms,
            last_seen=h.last_seen,
            detail=h.detail,
        )
        for h in rows
    ]


@router.get("/utilities")
async def utilities(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
    async with request.app.state.pool.acquire() as conn:
        return await tenant(user).utilities(conn)


@router.put("/utilities/{utility_id}/preferences/{provider_id}", status_code=204)
async def utility_preference(
    request: Request,
    user: CurrentUser,
    utility_id: str,
    provider_id: str,
    body: PreferenceIn,
    x_csrf_token: CsrfHeader = None,
) -> None:
    check_csrf(request, x_csrf_token)
    async with request.app.state.pool.acquire() as conn:
        await actions.set_utility_preference(conn, user, utility_id, provider_id, body.kind, body.rank, body.weight)


@router.get("/audit")
async def audit_log(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
    async with request.app.state.pool.acquire() as conn:
        return await tenant(user).audit_entries(conn)
