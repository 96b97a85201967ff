"""The console's pages (server-rendered): login, PPU → Meters, a meter, providers, routing, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

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
from operations.meter_view import STATUS_LABELS, since

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
# The audit log's action names as an operator reads them (the raw name stays in the row's title).
ACTION_LABELS = {
    "login": "Logged in",
    "logout": "Logged out",
    "confirm_support": "Confirm support",
    "confirm_support_requested": "Confirm support requested",
    "bulk_confirm_support": "Bulk Confirm support",
    "set_utility_preference": "Utility routing preference set",
    "set_meter_preference": "Meter routing preference set",
    "users_add": "User added",
    "users_revoke": "User's sessions ended",
    "providers_add": "Provider added",
    "providers_update": "Provider changed",
    "providers_enable": "Provider enabled",
    "providers_disable": "Provider disabled",
    "dlq_replay": "Dead letter replayed",
    "dlq_purge": "Dead letters purged",
    "auto_recheck": "Automatic re-check (meter marked)",
    "auto_recheck_set": "Automatic re-check set",
    "institutions_operator": "Deployment operator set",
    "institutions_add": "Institution registered",
    "utilities_add": "Utility registered",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace("_", " ").capitalize())


templates.env.globals.update(status_labels=STATUS_LABELS, since=since, action_label=action_label, utc=UTC)
router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"csrf": csrf_token(request), **context}, status_code=status_code)


@router.get("/login")
async def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", user=None, error=None)


@router.post("/login")
async def login(
    request: Request, institution: FormStr, username: FormStr, password: FormStr, csrf_token: FormStr
) -> Response:
    check_csrf(request, csrf_token)
    address = request.client.host if request.client else "unknown"
    async with request.app.state.pool.acquire() as conn:
        result = await authenticate(conn, institution, username, password, address)
        user = result if isinstance(result, User) else None
        await audit(
            conn,
            user,
            "login",
            username,
            "ok" if user else "refused",
            {"address": address},
            actor=username,
            institution_id=institution,
        )
        if user is not None:
            await start_session(conn, request, user)
    if user is None:  # the user types the password again, not the institution and name
        return page(
            request,
            "login.html",
            status_code=401,
            user=None,
            error=str(result),
            institution=institution,
            username=username,
        )
    return RedirectResponse("/ppu/meters", status_code=303)


@router.post("/logout")
async def logout(request: Request, user: CurrentUser, csrf_token: FormStr) -> Response:
    check_csrf(request, csrf_token)
    async with request.app.state.pool.acquire() as conn:
        await audit(conn, user, "logout", user.username, "ok")
        await end_session(conn, request)
    return RedirectResponse("/login", status_code=303)


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/ppu/meters", status_code=303)


@router.get("/favicon.ico")
async def favicon() -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/api/docs")
async def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI from the swagger-ui-bundle package's assets, started by a script of ours: no CDN, no inline script."""
    return page(request, "api_docs.html", user=None)


@router.get("/ppu/meters")
async def meters(request: Request, user: CurrentUser, q: str = "") -> HTMLResponse:
    async with request.app.state.pool.acquire() as conn:
        found = await queries.search_meters(conn, q) if q else []
    return page(request, "meters.html", user=user, q=queries.clean_query(q), found=found)


@router.get("/ppu/meters/{meter_number}")
async def meter(request: Request, user: CurrentUser, meter_number: str) -> HTMLResponse:
    async with request.app.state.pool.acquire() as conn:
        view = await tenant(user).meter(conn, queries.clean_query(meter_number))
        if view is None:
            raise HTTPException(404, "unknown meter")
        health = await tenant(user).health(conn, 15)
        own = await tenant(user).providers(conn)
        before = _time_or_none(request.query_params.get("before"))
        history = await tenant(user).timeline(conn, view.meter_number, before, HISTORY_PAGE) or []
    # Health carries both the state the window shows and the one routing uses now (stored); warn on either.
    unhealthy = [h for h in health if not h.enabled or h.state != "HEALTHY" or h.stored != "HEALTHY"]
    return page(
        request,
        "meter.html",
        user=user,
        view=view,
        unhealthy=unhealthy,
        own=own,
        confirmed=request.query_params.get("confirmed") == "1",
        history=history,
        older=history[-1].at.isoformat() if len(history) == HISTORY_PAGE else None,
    )


HISTORY_PAGE = 20


def _time_or_none(value: str | None) -> datetime | None:
    """The history's paging cursor; anything but an ISO time with its offset is the first page."""
    try:
        at = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None


@router.post("/ppu/meters/{meter_number}/confirm-support")
async def confirm_support(request: Request, user: CurrentUser, meter_number: str, csrf_token: FormStr) -> Response:
    check_csrf(request, csrf_token)
    meter_number = queries.clean_query(meter_number)
    await actions.confirm_support(request.app.state, user, meter_number)
    return RedirectResponse(f"/ppu/meters/{meter_number}?confirmed=1", status_code=303)


@router.post("/ppu/meters/{meter_number}/preference")
async def meter_preference(
    request: Request,
    user: CurrentUser,
    meter_number: str,
    csrf_token: FormStr,
    provider_id: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    meter_number = queries.clean_query(meter_number)
    async with request.app.state.pool.acquire() as conn:
        await actions.set_meter_preference(conn, user, meter_number, provider_id or None)
    return RedirectResponse(f"/ppu/meters/{meter_number}", status_code=303)


@router.get("/ppu/providers")
async def providers(request: Request, user: CurrentUser) -> HTMLResponse:
    async with request.app.state.pool.acquire() as conn:
        windows = {m: await tenant(user).health(conn, m) for m in (5, 60)}
    return page(request, "providers.html", user=user, windows=windows)


@router.get("/ppu/routing")
async def routing(request: Request, user: CurrentUser) -> HTMLResponse:
    async with request.app.state.pool.acquire() as conn:
        utilities = await tenant(user).utilities(conn)
        own = await tenant(user).providers(conn)
    return page(request, "routing.html", user=user, utilities=utilities, own=own)


@router.post("/ppu/routing/{utility_id}")
async def routing_edit(
    request: Request,
    user: CurrentUser,
    utility_id: str,
    csrf_token: FormStr,
    provider_id: FormStr,
    kind: FormStr,
    rank: Annotated[str, Form()] = "",
    weight: Annotated[str, Form()] = "1",
) -> Response:
    check_csrf(request, csrf_token)
    try:
        rank_n, weight_n = (int(rank) if rank else None), int(weight or "1")
    except ValueError:
        raise HTTPException(422, "rank and weight are whole numbers") from None
    async with request.app.state.pool.acquire() as conn:
        await actions.set_utility_preference(
            conn, user, utility_id, provider_id, None if kind == "none" else kind, rank_n, weight_n
        )
    return RedirectResponse("/ppu/routing", status_code=303)


@router.get("/ppu/audit")
async def audit_log(request: Request, user: CurrentUser) -> HTMLResponse:
    async with request.app.state.pool.acquire() as conn:
        entries = await tenant(user).audit_entries(conn)
    return page(request, "audit.html", user=user, entries=entries)
