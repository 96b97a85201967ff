"""The JSON API's providers, utilities and audit log: provider health, utilities' provider preferences, the
institution's audit entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from console import actions
from console.actions import tenant
from console.api import CsrfHeader
from console.auth import CurrentUser, check_csrf

router = APIRouter(prefix="/api/v1", tags=["ppu"])


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
