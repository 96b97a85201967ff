"""Duplicates, reordering and late answers each have exactly the right single effect."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from kernel.settings import Settings
from tests.harness import PROVIDERS, System, applied, eventually, running, seed_reference
from tests.test_dead_letters import dead_letters


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
    await eventually(lambda: applied(db, "lookup", 3), what="all three applied")
    await eventually(lambda: db.fetchval("SELECT count(*) FROM routing_decisions"), what="the decision")
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts") == 1
    assert await db.fetchval("SELECT count(*) FROM lookup_rounds") == 1
    assert await db.fetchval("SELECT count(*) FROM lookups") == len(PROVIDERS)
    assert await db.fetchval("SELECT count(*) FROM routing_decisions") == 1
    # The attempt id is the key that made them count once, not the inbox: the lookup flow keeps none.
    assert (
        await db.fetchval("SELECT count(*) FROM inbox WHERE message_id = ANY($1::uuid[])", [event.id, resent.id]) == 0
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


async def test_answers_to_one_lookup_count_in_the_order_received_not_by_the_providers_clock(
    system: System, db: asyncpg.Connection
) -> None:
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
    assert row is not None and row["status"] == "not_supported", "received last: it counts, whatever its date"
    assert row["last_response_at"] == now - timedelta(seconds=5)


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


async def test_an_answer_dated_a_year_ahead_freezes_nothing(system: System, db: asyncpg.Connection) -> None:
    """The issue's story: `supported` dated a year ahead, then Confirm support, a rebroadcast and a correct
    `not_supported`: the status follows, the mark clears, and the next purchase is not routed to that provider."""
    meter = "0401000024"
    await system.attempt(meter)
    first = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
    await system.respond(first["p1"], "supported", responded_at=datetime.now(UTC) + timedelta(days=365))
    for p in ("p2", "p3"):
        await system.respond(first[p], "not_supported")
    stored = await eventually(
        lambda: db.fetchval(
            "SELECT last_response_at FROM meter_support WHERE meter_number = $1 AND provider_id = 'p1'", meter
        ),
        what="p1's answer",
    )
    assert stored < datetime.now(UTC) + timedelta(minutes=1), "clamped to when we received it"
    await system.confirm_support(meter)
    await eventually(
        lambda: db.fetchval("SELECT EXISTS (SELECT FROM rebroadcast_marks WHERE meter_number = $1)", meter),
        what="marked",
    )
    await system.attempt(meter)
    again = (await system.requests("p1", 1))[0]
    assert again.data.reason == "rebroadcast"
    await system.respond(again, "not_supported")
    await eventually(
        lambda: db.fetchval(
            """SELECT s.status = 'not_supported' AND NOT EXISTS (SELECT FROM rebroadcast_marks WHERE meter_number = $1)
               FROM meter_support s WHERE s.meter_number = $1 AND s.provider_id = 'p1'""",
            meter,
        ),
        what="not supported, and the mark cleared",
    )
    last = await system.attempt(meter)
    row = await eventually(
        lambda: db.fetchrow("SELECT * FROM routing_decisions WHERE attempt_id = $1", last.data.attempt_id),
        what="the next decision",
    )
    assert row["provider_id"] != "p1" and row["outcome"] == "blocked"


async def test_an_attempt_id_reused_for_another_meter_or_institution_is_refused_not_dropped(
    system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    first = await system.attempt("0401000023")
    await eventually(lambda: db.fetchval("SELECT count(*) FROM purchase_attempts"), what="the first attempt")
    same_id = first.data.attempt_id
    other_meter = await system.attempt("0401000024", attempt_id=same_id)
    other_institution = await system.attempt("0401000023", institution="i2", attempt_id=same_id)
    await system.attempt("0401000023", attempt_id=same_id)  # the same purchase again: its one decision
    letters = await dead_letters(settings, "purchase_attempts_dlq", 2)
    refused = sorted(json.loads(raw)["id"] for raw, _ in letters)
    assert refused == sorted([str(other_meter.id), str(other_institution.id)])
    for _, headers in letters:
        assert headers.stage == "apply" and headers.error_class == "Rejected"
        assert "already used for another meter or institution" in headers.error_message
        assert "0401000023" not in headers.error_message and "i1" not in headers.error_message
    await eventually(lambda: applied(db, "lookup", 4), what="the retry applied")
    kept = await db.fetch("SELECT meter_number, institution_id FROM purchase_attempts WHERE attempt_id = $1", same_id)
    assert [tuple(r) for r in kept] == [("0401000023", "i1")]


async def test_an_attempt_id_reused_within_one_batch_is_refused(
    system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    a = await system.attempt("0401000025", send=False)
    b = await system.attempt("0401000026", attempt_id=a.data.attempt_id, send=False)
    # Sent back to back (one batch, or two: the second is refused either way).
    await system.send("purchase_attempts", a)
    await system.send("purchase_attempts", b)
    letters = await dead_letters(settings, "purchase_attempts_dlq", 1)
    refused = json.loads(letters[0][0])
    assert refused["data"]["meter_number"] in ("0401000025", "0401000026")
    kept = await eventually(
        lambda: db.fetchval("SELECT meter_number FROM purchase_attempts WHERE attempt_id = $1", a.data.attempt_id),
        what="the attempt kept",
    )
    assert {kept, refused["data"]["meter_number"]} == {"0401000025", "0401000026"}
