"""The user guide's stories, end to end through the real workers, broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from kernel.settings import Settings
from operations.tenancy import Tenant
from tests.harness import PROVIDERS, System, eventually, running, seed_reference


@pytest.fixture
async def system(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[System]:
    await seed_reference(db)
    async with running(settings.model_copy(update={"round_deadline_seconds": 2.0})) as s:
        yield s


async def decision(db: asyncpg.Connection, attempt_id: object) -> asyncpg.Record:
    row: asyncpg.Record = await eventually(
        lambda: db.fetchrow("SELECT * FROM routing_decisions WHERE attempt_id = $1", attempt_id),
        what=f"a routing decision for {attempt_id}",
    )
    return row


async def test_new_meter_is_broadcast_answers_recorded_and_purchase_routed(
    system: System, db: asyncpg.Connection
) -> None:
    attempt = await system.attempt("0401000001")
    requests = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
    assert {r.data.reason for r in requests.values()} == {"first_seen"}
    assert len({r.data.round_id for r in requests.values()}) == 1, "one round for the three providers"
    await system.respond(requests["p1"], "supported", utility="Riverside")
    await system.respond(requests["p2"], "not_supported")
    # p3 never answers.
    d = await decision(db, attempt.data.attempt_id)
    assert (d["outcome"], d["provider_id"]) == ("routed", "p1")
    view = await Tenant("i1").meter(db, "0401000001")
    assert view is not None and view.utility == "Riverside" and not view.blocked
    rows = {p.provider_id: p for p in view.providers}
    assert rows["p1"].status == "supported" and not rows["p1"].awaiting_confirmation
    assert rows["p2"].status == "not_supported" and rows["p1"].last_response_text().endswith("ago")
    assert rows["p3"].status == "unconfirmed" and rows["p3"].last_response_text() == "Awaiting confirmation"
    assert await db.fetchval("SELECT count(*) FROM routing_decisions") == 1


async def test_blocked_meter_confirm_support_rebroadcast_unblocks(system: System, db: asyncpg.Connection) -> None:
    meter = "0401000002"
    first = await system.attempt(meter)
    requests = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
    await system.respond(requests["p1"], "not_supported")
    await system.respond(requests["p2"], "not_supported")
    d = await decision(db, first.data.attempt_id)
    assert d["outcome"] == "blocked" and await db.fetchval("SELECT blocked FROM meters WHERE meter_number = $1", meter)
    before = await db.fetchval(
        "SELECT last_response_at FROM meter_support WHERE meter_number = $1 AND provider_id = 'p1'", meter
    )

    await system.confirm_support(meter)
    await eventually(
        lambda: db.fetchval("SELECT EXISTS (SELECT 1 FROM rebroadcast_marks WHERE meter_number = $1)", meter),
        what="the rebroadcast mark",
    )
    mine, theirs = await Tenant("i1").meter(db, meter), await Tenant("i2").meter(db, meter)
    assert mine is not None and theirs is not None
    assert {p.provider_id: p.status for p in mine.providers} == {p: "unconfirmed" for p in PROVIDERS}
    assert mine.marked_for_rebroadcast and mine.marked_by == "olga"
    assert {p.provider_id: p.status for p in theirs.providers} == {"p1": "not_supported"}, "i2's view is its own"
    assert not theirs.marked_for_rebroadcast and theirs.marked_by is None

    second = await system.attempt(meter)
    again = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
    assert {r.data.reason for r in again.values()} == {"rebroadcast"}
    await system.respond(again["p1"], "supported")
    await eventually(
        lambda: db.fetchval(
            "SELECT NOT blocked AND NOT EXISTS (SELECT FROM rebroadcast_marks k WHERE k.meter_number = m.meter_number) "
            "FROM meters m WHERE meter_number = $1",
            meter,
        ),
        what="unblocked, flag cleared",
    )
    d2 = await decision(db, second.data.attempt_id)
    assert (d2["outcome"], d2["provider_id"]) == ("routed", "p1")
    view = await Tenant("i1").meter(db, meter)
    assert view is not None
    rows = {p.provider_id: p for p in view.providers}
    assert rows["p1"].status == "supported" and rows["p1"].last_response_at is not None
    assert rows["p1"].last_response_at > before
    assert rows["p2"].status == "unconfirmed" and rows["p2"].awaiting_confirmation, "silent: stays Unconfirmed"
    assert rows["p3"].status == "unconfirmed"


async def test_known_supported_meter_routes_at_once_with_a_routine_lookup(
    system: System, db: asyncpg.Connection
) -> None:
    meter = "0401000003"
    await system.attempt(meter)
    first = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
    for p, status in (("p1", "not_supported"), ("p2", "supported"), ("p3", "not_supported")):
        await system.respond(first[p], status)
    await eventually(
        lambda: db.fetchval("SELECT count(*) = 0 FROM lookup_rounds WHERE closed_at IS NULL"),
        what="the round to close once everyone answered",
    )
    attempt = await system.attempt(meter)
    d = await decision(db, attempt.data.attempt_id)
    assert (d["outcome"], d["provider_id"]) == ("routed", "p2")
    routine = (await system.requests("p2", 1))[0]
    assert routine.data.reason == "routine"
    skipped = {s["provider_id"]: s["reason"] for s in d["skipped"]}
    assert skipped == {"p1": "not supported", "p3": "not supported"}


async def test_unsupported_known_meter_is_blocked_without_asking_again(system: System, db: asyncpg.Connection) -> None:
    meter = "0401000004"
    await system.attempt(meter)
    for p in PROVIDERS:
        await system.respond((await system.requests(p, 1))[0], "not_supported")
    await eventually(lambda: db.fetchval("SELECT blocked FROM meters WHERE meter_number = $1", meter), what="blocked")
    later = await system.attempt(meter)
    d = await decision(db, later.data.attempt_id)
    assert d["outcome"] == "blocked"
    assert await db.fetchval("SELECT count(*) FROM lookup_rounds WHERE meter_number = $1", meter) == 1


async def test_unknown_meter_and_unauthorised_operator_are_rejected_and_audited(
    system: System, db: asyncpg.Connection
) -> None:
    await system.attempt("0401000005")
    await eventually(lambda: db.fetchval("SELECT count(*) FROM meters"), what="the meter")
    await system.confirm_support("0401000005", operator="vic")  # a viewer
    await system.confirm_support("0401000005", operator="wes", institution="i1")  # another institution's user
    await system.confirm_support("0409999999")  # unknown meter
    rows = await eventually(lambda: _three_audits(db), what="three audit rows")
    assert [(r["actor"], r["outcome"]) for r in rows] == [
        ("vic", "rejected"),
        ("wes", "rejected"),
        ("olga", "rejected"),
    ]
    assert "unknown meter" in rows[2]["details"]["reason"]
    assert not await db.fetchval("SELECT EXISTS (SELECT 1 FROM rebroadcast_marks WHERE meter_number = '0401000005')")


async def _three_audits(db: asyncpg.Connection) -> list[asyncpg.Record] | None:
    rows = await db.fetch("SELECT actor, outcome, details FROM audit_log ORDER BY audit_id")
    return rows if len(rows) >= 3 else None
