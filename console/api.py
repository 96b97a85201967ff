"""The JSON API under /api/v1: what the pages show and do, with the same authorisation (session cookie, and
the session's CSRF token in `X-CSRF-Token` on every write). Sessions here; meters in console/api_meters.py,
providers, utilities and the audit log in console/api_providers.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel, Field

from console.auth import CurrentUser, User, audit, authenticate, check_csrf, csrf_token, end_session, start_session

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
