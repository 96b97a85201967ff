"""What console users do (pages and API alike): authorised here by role, scoped to their institution through
operations/tenancy.py, audited, and for Confirm support a signed command whose result the page waits for."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from fastapi import HTTPException

from console.auth import User, require
from domain.command_proof import sign
from kernel.topics import topic
from operations.bulk_confirm import MeterResult, TooMany, confirm_many, parse_meters
from operations.tenancy import NotYours, Tenant, Unknown
from schemas.commands import CommandResultData, ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import CONTENT_TYPE

KINDS = ("ranked", "unranked", "excluded")


def tenant(user: User) -> Tenant:
    return Tenant(user.institution_id)


def _signing_key(state: Any) -> str:
    key = state.settings.command_signing_key
    if key is None:
        raise HTTPException(503, "commands cannot be signed: PPU_COMMAND_SIGNING_KEY is not set")
    return str(key.get_secret_value())


async def bulk_confirm_support(state: Any, user: User, meters: list[str] | str) -> list[MeterResult]:
    """Bulk Confirm support: the single button's command, rules and audit, per meter of a bounded list."""
    require(user, "operator")
    try:
        listed = parse_meters(meters) if isinstance(meters, str) else parse_meters("\n".join(meters))
    except TooMany as e:
        raise HTTPException(422, str(e)) from None
    if not listed:
        raise HTTPException(422, "no meter numbers given")
    async with state.pool.acquire() as conn:
        return await confirm_many(
            conn,
            state.producer,
            state.results,
            meters=listed,
            operator=user.username,
            institution_id=user.institution_id,
            signing_key=_signing_key(state),
            topic_prefix=state.settings.topic_prefix,
            via="console",
            wait_seconds=state.settings.console_command_wait_seconds,
        )


async def confirm_support(state: Any, user: User, meter_number: str) -> tuple[uuid.UUID, CommandResultData | None]:
    """Emits the signed command and waits (bounded) for its result event, holding no database connection."""
    require(user, "operator")
    key = _signing_key(state)
    async with state.pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM meters WHERE meter_number = $1", meter_number):
            raise HTTPException(404, f"unknown meter {meter_number}")
    data = ConfirmSupportRequestedData(
        meter_number=meter_number, operator=user.username, institution_id=user.institution_id
    )
    command = sign(ConfirmSupportRequested.new(data, source="ppu/console", correlationid=str(uuid.uuid4())), key)
    waiting = state.results.expect(command.id)
    await state.producer.send_and_wait(
        topic("operator_commands").name(state.settings.topic_prefix),
        value=command.encode(),
        key=meter_number.encode(),
        headers=[("content-type", CONTENT_TYPE)],
    )
    async with state.pool.acquire() as conn:
        await tenant(user).audit(
            conn, user.username, "confirm_support_requested", meter_number, "sent", {"command_id": str(command.id)}
        )
    result = await state.results.wait(waiting, command.id, state.settings.console_command_wait_seconds)
    if result is not None and result.outcome == "rejected":
        raise HTTPException(403, result.reason or "the command was rejected")
    return command.id, result


async def set_meter_preference(
    conn: asyncpg.Connection, user: User, meter_number: str, provider_id: str | None
) -> None:
    require(user, "admin")
    try:
        await tenant(user).set_meter_preference(conn, user.username, meter_number, provider_id)
    except NotYours as e:
        raise HTTPException(404 if isinstance(e, Unknown) else 403, str(e)) from None


async def set_utility_preference(
    conn: asyncpg.Connection,
    user: User,
    utility_id: str,
    provider_id: str,
    kind: str | None,
    rank: int | None,
    weight: int,
) -> None:
    """Sets (or with kind None removes) one provider's place in the institution's preferences for a utility."""
    require(user, "admin")
    if kind is not None and kind not in KINDS:
        raise HTTPException(422, f"kind must be one of {', '.join(KINDS)}")
    if kind == "ranked" and (rank is None or rank < 1):
        raise HTTPException(422, "a ranked provider needs a rank of 1 or more")
    if weight < 0:
        raise HTTPException(422, "weight cannot be negative")
    try:
        await tenant(user).set_utility_preference(conn, user.username, utility_id, provider_id, kind, rank, weight)
    except NotYours as e:
        raise HTTPException(404 if isinstance(e, Unknown) else 403, str(e)) from None
