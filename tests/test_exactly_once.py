"""Duplicates, reordering and late answers each have exactly the right single effect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ppu.settings import Settings
from tests.harness import PROVIDERS, System, eventually, running, seed_reference


@pytest.fixture
async def system(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[System]:
    await seed_reference(db)
    async with running(settings.model_copy(update={"round_deadline_seconds": 2.0})) as s:
        yield s


async def test_same_message_twice_and_same_attempt_under_new_id(system: System, db: asyncpg.Connection) -> None:
    event = await system.attempt("0401000020", send=False)
    await system.send("purchase_attempts", event)
    await system.send("purchase_attempts", event)  # redelivered: same event id
    resent = await system.attempt("0401000020", attempt_id=event.data.attempt_id)  # same attempt, new event id
    await eventually(lambda: db.fetchval("SELECT count(*) FROM inbox"), what="inbox rows")
    await eventually(lambda: db.fetchval("SELECT count(*) FROM routing_decisions"), what="the decision")
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts") == 1
    assert await db.fetchval("SELECT count(*) FROM lookup_rounds") == 1
    assert await db.fetchval("SELECT count(*) FROM lookups") == len(PROVIDERS)
    assert await db.fetchval("SELECT count(*) FROM routing_decisions") == 1
    assert (
        await db.fetchval("SELECT count(*) FROM inbox WHERE message_id = ANY($1::uuid[])", [event.id, resent.id]) == 2
    )


async def test_two_attempts_for_one_meter_in_one_batch_share_one_round(system: System, db: asyncpg.Connection) -> None:
    a = await system.attempt("0401000021", send=False)
    b = await system.attempt("0401000021", send=False)
    # Sent back to back: the lookup worker sees them in one batch (or two; either way one round).
    await system.send("purchase_attempts", a)
    await system.send("purchase_attempts", b)
    requests = {p: await system.requests(p, 1) for p in PROVIDERS}
    for p in PROVIDERS:
        await system.respond(requests[p][0], "supported" if p == "p2" else "not_supported")
    await eventually(lambda: db.fetchval("SELECT count(*) = 2 FROM routing_decisions"), what="two decisions")
    assert await db.fetchval("SELECT count(*) FROM lookup_rounds") == 1
    assert set(await db.fetchval("SELECT array_agg(DISTINCT provider_id) FROM routing_decisions")) == {"p2"}


async def test_responses_in_reverse_order_keep_the_newest(system: System, db: asyncpg.Connection) -> None:
    meter = "0401000022"
    await system.attempt(meter)
    request = (await system.requests("p1", 1))[0]
    now = datetime.now(UTC)
    newer = system.answer(request, "supported", responded_at=now)
    older = system.answer(request, "not_supported", responded_at=now - timedelta(seconds=5))
    await system.send("lookup_responses", newer)
    await system.send("lookup_responses", older)
    await eventually(
        lambda: db.fetchval("SELECT count(*) = 2 FROM inbox WHERE message_id = ANY($1::uuid[])", [newer.id, older.id]),
        what="both responses handled",
    )
    row = await db.fetchrow(
        "SELECT status, last_response_at FROM meter_support WHERE meter_number = $1 AND provider_id = 'p1'", meter
    )
    assert row is not None and row["status"] == "supported" and row["last_response_at"] == now


async def test_late_answer_to_an_older_round_changes_nothing(system: System, db: asyncpg.Connection) -> None:
    meter = "0401000023"
    await system.attempt(meter)
    old_round = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
    for p in ("p2", "p3"):
        await system.respond(old_round[p], "not_supported")
    # p1 is slow; the meter is blocked at the deadline, the operator asks for a re-check, the customer retries.
    await eventually(lambda: db.fetchval("SELECT blocked FROM meters WHERE meter_number = $1", meter), what="blocked")
    await system.confirm_support(meter)
    await eventually(
        lambda: db.fetchval("SELECT EXISTS (SELECT 1 FROM rebroadcast_marks WHERE meter_number = $1)", meter),
        what="marked",
    )
    await system.attempt(meter)
    new_round = (await system.requests("p1", 1))[0]
    assert new_round.data.reason == "rebroadcast"
    await system.respond(new_round, "supported")
    await eventually(
        lambda: db.fetchval(
            "SELECT status = 'supported' FROM meter_support WHERE meter_number = $1 AND provider_id = 'p1'", meter
        ),
        what="the rebroadcast answer",
    )
    late = await system.respond(old_round["p1"], "not_supported")  # answered now, to the old lookup
    await eventually(lambda: db.fetchval("SELECT count(*) FROM inbox WHERE message_id = $1", late.id), what="late")
    assert (
        await db.fetchval("SELECT status FROM meter_support WHERE meter_number = $1 AND provider_id = 'p1'", meter)
        == "supported"
    )


async def test_confirm_support_twice_marks_once(system: System, db: asyncpg.Connection) -> None:
    meter = "0401000024"
    await system.attempt(meter)
    await eventually(lambda: db.fetchval("SELECT count(*) FROM meters"), what="the meter")
    await system.confirm_support(meter)
    await system.confirm_support(meter)
    await eventually(lambda: db.fetchval("SELECT count(*) = 2 FROM audit_log"), what="two audits")
    outcomes = [r["outcome"] for r in await db.fetch("SELECT outcome FROM audit_log ORDER BY audit_id")]
    assert outcomes == ["marked", "already_marked"]
