"""Dead letters in the console, for the deployment's admins only (admins of the institution that runs it): dead
letters belong to no single institution, so another institution's admin sees no link and gets 403. Count per topic
and error, inspect one (headers, value as text and hex, the error), replay selected ones after a fix; each replay
audited. The same operations as `ppu dlq` (operations/dead_letters.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse

from console.auth import CurrentUser, User, check_csrf
from console.pages import page
from db.audit import AuditRow, write_audit
from kernel.connections import endpoints
from kernel.errors import PpuError
from operations import dead_letters as dl

router = APIRouter(include_in_schema=False)
SHOWN = 200  # newest first; the CLI lists every one


def _deployment_admin(user: User) -> None:
    if not user.deployment_admin:
        raise HTTPException(403, "dead letters are for the admins of the institution that runs the deployment")


async def _letters(request: Request, key: str | None) -> list[dl.Letter]:
    state = request.app.state
    try:
        async with state.pool.acquire() as conn:
            topics = await dl.topics_of(conn, state.settings.topic_prefix, key or None)
    except PpuError as e:
        raise HTTPException(422, str(e)) from None
    return await dl.read_letters(endpoints(state.settings).kafka_bootstrap_servers, topics)


@router.get("/ppu/dead-letters")
async def listing(
    request: Request, user: CurrentUser, topic: str = "", stage: str = "", error_class: str = ""
) -> HTMLResponse:
    _deployment_admin(user)
    return await _page(request, user, topic, stage, error_class, replayed=None)


async def _page(
    request: Request, user: User, topic: str, stage: str, error_class: str, replayed: list[tuple[str, str]] | None
) -> HTMLResponse:
    letters = dl.matching(await _letters(request, topic), stage or None, error_class or None, None)
    newest = sorted(letters, key=lambda x: x.timestamp_ms, reverse=True)[:SHOWN]
    return page(
        request,
        "dead_letters.html",
        user=user,
        letters=newest,
        total=len(letters),
        counts=dl.counts(letters),
        why_not=dl.why_not_replayable,
        filters={"topic": topic, "stage": stage, "error_class": error_class},
        replayed=replayed,
    )


@router.get("/ppu/dead-letters/{ref}")
async def one(request: Request, user: CurrentUser, ref: str) -> HTMLResponse:
    _deployment_admin(user)
    letter = await _find(request, ref)
    about = letter.about.model_dump(exclude_none=True) if letter.about else {}
    return page(
        request,
        "dead_letter.html",
        user=user,
        letter=letter,
        about=about,
        text=letter.value.decode("utf-8", "replace")[:20_000],
        hex=dl.hex_dump(letter.value),
        why_not=dl.why_not_replayable(letter),
    )


async def _find(request: Request, ref: str) -> dl.Letter:
    try:
        dl.parse_ref(ref)  # a malformed ref is told before anything is read
    except PpuError as e:
        raise HTTPException(422, str(e)) from None
    found = dl.find(await _letters(request, None), ref)
    if found is None:
        raise HTTPException(404, f"no dead letter {ref}")
    return found


@router.post("/ppu/dead-letters/replay")
async def replay(
    request: Request, user: CurrentUser, csrf_token: Annotated[str, Form()], refs: Annotated[list[str], Form()]
) -> HTMLResponse:
    """Replays the selected dead letters to their original topics; replaying one twice changes nothing."""
    check_csrf(request, csrf_token)
    _deployment_admin(user)
    done: list[tuple[str, str]] = []
    audit = []
    for ref in refs[:SHOWN]:
        try:
            letter = await _find(request, ref)
            to = await dl.replay(request.app.state.producer, letter)
        except (HTTPException, PpuError) as e:
            reason = e.detail if isinstance(e, HTTPException) else str(e)
            done.append((ref, f"refused: {reason}"))
            audit.append(AuditRow(user.username, user.institution_id, "dlq_replay", ref, "refused", {"reason": reason}))
            continue
        done.append((ref, f"replayed to {to}"))
        audit.append(
            AuditRow(user.username, user.institution_id, "dlq_replay", ref, "ok", {"to": to, "via": "console"})
        )
    async with request.app.state.pool.acquire() as conn:
        await write_audit(conn, audit)
    return await _page(request, user, "", "", "", replayed=done)
