"""What console users do (pages and API alike): authorised here, audited, and for Confirm support a command."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import HTTPException

from console.auth import User, audit, require
from ppu.dbconn import Db
from ppu.topics import topic
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import CONTENT_TYPE

KINDS = ("ranked", "unranked", "excluded")


async def confirm_support(state: Any, conn: Db, user: User, meter_number: str) -> uuid.UUID:
    """Emits the command; waits (bounded) for the command consumer so the page shows the outcome."""
    require(user, "operator")
    marked = await conn.fetchval("SELECT marked_for_rebroadcast FROM meters WHERE meter_number = $1", meter_number)
    if marked is None:
        raise HTTPException(404, f"unknown meter {meter_number}")
    data = ConfirmSupportRequestedData(
        meter_number=meter_number, operator=user.username, institution_id=user.institution_id
    )
    event = ConfirmSupportRequested.new(data, source="ppu/console", correlationid=str(uuid.uuid4()))
    await state.producer.send_and_wait(
        topic("operator_commands").name(state.settings.topic_prefix),
        value=event.encode(),
        key=meter_number.encode(),
        headers=[("content-type", CONTENT_TYPE)],
    )
    await audit(conn, user, "confirm_support_requested", meter_number, "sent", {"command_id": str(event.id)})
    deadline = asyncio.get_running_loop().time() + state.settings.console_command_wait_seconds
    while asyncio.get_running_loop().time() < deadline:
        if await conn.fetchval(
            "SELECT true FROM audit_log WHERE action = 'confirm_support' AND details->>'command_id' = $1", str(event.id)
        ):
            break
        await asyncio.sleep(0.1)
    return event.id


async def _own_provider(conn: Db, user: User, provider_id: str) -> None:
    if not await conn.fetchval(
        "SELECT true FROM institution_providers WHERE institution_id = $1 AND provider_id = $2",
        user.institution_id,
        provider_id,
    ):
        raise HTTPException(403, f"provider {provider_id} is not enabled for {user.institution_id}")


async def set_meter_preference(conn: Db, user: User, meter_number: str, provider_id: str | None) -> None:
    require(user, "admin")
    if provider_id:
        await _own_provider(conn, user, provider_id)
    async with conn.transaction():
        before = await conn.fetchval(
            "SELECT preferred_provider_id FROM meters WHERE meter_number = $1 FOR UPDATE", meter_number
        )
        if before is not None:
            await _own_provider(conn, user, before)  # nor replace another institution's choice
        updated = await conn.execute(
            "UPDATE meters SET preferred_provider_id = $2, updated_at = now() WHERE meter_number = $1",
            meter_number,
            provider_id,
        )
        if updated == "UPDATE 0":
            raise HTTPException(404, f"unknown meter {meter_number}")
        await audit(
            conn, user, "set_meter_preference", meter_number, "changed", {"before": before, "after": provider_id}
        )


async def set_utility_preference(
    conn: Db, user: User, utility_id: str, provider_id: str, kind: str | None, rank: int | None, weight: int
) -> None:
    """Sets (or with kind None removes) one provider's place in a utility's routing preferences."""
    require(user, "admin")
    await _own_provider(conn, user, provider_id)
    if kind is not None and kind not in KINDS:
        raise HTTPException(422, f"kind must be one of {', '.join(KINDS)}")
    if kind == "ranked" and (rank is None or rank < 1):
        raise HTTPException(422, "a ranked provider needs a rank of 1 or more")
    if weight < 0:
        raise HTTPException(422, "weight cannot be negative")
    async with conn.transaction():
        if not await conn.fetchval("SELECT true FROM utilities WHERE utility_id = $1", utility_id):
            raise HTTPException(404, f"unknown utility {utility_id}")
        before = await conn.fetchrow(
            "SELECT kind, rank, weight FROM utility_routing_preferences "
            "WHERE utility_id = $1 AND provider_id = $2 FOR UPDATE",
            utility_id,
            provider_id,
        )
        if kind is None:
            await conn.execute(
                "DELETE FROM utility_routing_preferences WHERE utility_id = $1 AND provider_id = $2",
                utility_id,
                provider_id,
            )
        else:
            await conn.execute(
                """INSERT INTO utility_routing_preferences VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (utility_id, provider_id) DO UPDATE
                   SET kind = excluded.kind, rank = excluded.rank, weight = excluded.weight""",
                utility_id,
                provider_id,
                kind,
                rank if kind == "ranked" else None,
                weight,
            )
        await audit(
            conn,
            user,
            "set_utility_preference",
            f"{utility_id}/{provider_id}",
            "changed",
            {
                "before": dict(before) if before else None,
                "after": {"kind": kind, "rank": rank, "weight": weight} if kind else None,
            },
        )
