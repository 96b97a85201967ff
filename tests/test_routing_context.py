"""What routing reads for a batch (workers/routing_context.py), in two round trips: every kind of fact about the
batch's meters and institutions, and nothing of another institution's."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from domain.attempts import Decided
from domain.routing import Decision, Preference
from kernel.ids import new_id
from tests.harness import seed_reference
from workers.decisions import record_decisions
from workers.meter_locks import lock_or_create
from workers.routing_context import load_context
from workers.unit_of_work import UnitOfWork


async def test_every_fact_of_the_batch_is_loaded_and_no_other_institutions(db: asyncpg.Connection) -> None:
    await seed_reference(db)
    await db.execute("INSERT INTO utilities VALUES ('u1', 'Utility One'), ('u2', 'Utility Two')")
    await db.execute("INSERT INTO meters (meter_number, utility_id) VALUES ('m1', 'u1'), ('m2', 'u2'), ('m3', 'u1')")
    await db.execute("UPDATE meters SET blocked = true WHERE meter_number = 'm2'")
    await db.execute("UPDATE providers SET enabled = false, health = 'DOWN' WHERE provider_id = 'p2'")
    await db.execute(
        """INSERT INTO meter_support (meter_number, provider_id, status)
           VALUES ('m1', 'p1', 'supported'), ('m1', 'p2', 'not_supported'), ('m3', 'p1', 'supported')"""
    )
    await db.execute(
        """INSERT INTO rebroadcast_marks VALUES ('m1', 'i1', 'olga', now()), ('m2', 'i2', 'wes', now()),
                                                ('m3', 'i1', 'olga', now())"""
    )
    await db.execute(
        """INSERT INTO support_resets
           VALUES ('m1', 'p1', 'i1', now()), ('m1', 'p1', 'i2', now()), ('m3', 'p2', 'i1', now())"""
    )
    await db.execute("INSERT INTO meter_preferences VALUES ('m1', 'i1', 'p1'), ('m1', 'i2', 'p1')")
    await db.execute(
        """INSERT INTO utility_routing_preferences (utility_id, provider_id, kind, rank, weight, institution_id)
           VALUES ('u1', 'p1', 'ranked', 1, 1, 'i1'), ('u1', 'p2', 'unranked', NULL, 3, 'i1'),
                  ('u1', 'p1', 'excluded', NULL, 1, 'i2'), ('u2', 'p1', 'ranked', 1, 1, 'i1')"""
    )

    ctx = await load_context(db, ["m1", "m2"], ["i1"], lock=True)

    assert set(ctx.meters) == {"m1", "m2"}  # m3 is not in the batch
    m1, m2 = ctx.meters["m1"], ctx.meters["m2"]
    assert (m1.utility_id, m1.blocked, m2.blocked) == ("u1", False, True)
    assert m1.support == {"p1": "supported", "p2": "not_supported"} and m2.support == {}
    assert m1.marked_by == {"i1"} and m2.marked_by == {"i2"}  # marks are the meter's, whoever made them
    assert m1.resets == {"i1": {"p1"}}  # only the batch's institutions
    assert m1.preferred == {"i1": "p1"}
    assert ctx.providers["p1"] == (True, "HEALTHY") and ctx.providers["p2"] == (False, "DOWN")
    assert set(ctx.providers) >= {"p1", "p2", "p3"}
    assert ctx.institution_providers == {"i1": {"p1", "p2", "p3"}}  # not i2's
    assert sorted(ctx.preferences[("i1", "u1")], key=lambda p: p.provider_id) == [
        Preference("p1", "ranked", 1, 1),
        Preference("p2", "unranked", None, 3),
    ]
    assert ("i2", "u1") not in ctx.preferences
    assert ("i1", "u2") in ctx.preferences  # m2's utility


async def test_a_waiting_attempt_decided_by_two_transactions_at_once_gets_one_decision(
    db: asyncpg.Connection, database_url: str
) -> None:
    """The partitioned history has no unique attempt id (migration 0013): the claim on the attempt is the guard."""
    await seed_reference(db)
    await db.execute("INSERT INTO meters (meter_number) VALUES ('m9')")
    attempt = uuid.uuid4()
    await db.execute(
        """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, round_id, joined_at)
           VALUES ($1, 'm9', 'i1', now(), $2, now())""",
        attempt,
        new_id(),
    )
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        works = [UnitOfWork(c, "race.") for c in (first, second)]
        one = [Decided(attempt, "m9", Decision("p1", "preferred"), None)]
        other = [Decided(attempt, "m9", Decision(None, "no provider"), None)]
        tx1, tx2 = first.transaction(), second.transaction()
        await tx1.start()
        await tx2.start()
        await record_decisions(first, works[0], one)
        # The second waits on the first's row lock, then finds the attempt decided and writes nothing.
        racing = asyncio.ensure_future(record_decisions(second, works[1], other))
        await asyncio.sleep(0.2)
        assert not racing.done(), "the second decider must wait for the first"
        await tx1.commit()
        await racing
        await tx2.commit()
    finally:
        await first.close()
        await second.close()
    rows = await db.fetch("SELECT provider_id FROM routing_decisions WHERE attempt_id = $1", attempt)
    assert [r["provider_id"] for r in rows] == ["p1"]
    assert [len(w.outbox.rows) for w in works] == [1, 0], "only the first publishes a decision"


async def test_meters_are_locked_or_created_and_one_created_meanwhile_is_locked_not_created(
    db: asyncpg.Connection, database_url: str
) -> None:
    await db.execute("INSERT INTO meters (meter_number, blocked) VALUES ('m1', true)")
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():  # another batch creates m2 first and has not committed yet
            await other.execute("INSERT INTO meters (meter_number) VALUES ('m2')")
            async with db.transaction():
                racing = asyncio.ensure_future(lock_or_create(db, ["m3", "m2", "m1"]))
                await asyncio.sleep(0.3)
                assert not racing.done(), "m2's insert waits for the other batch"
                await other.execute("UPDATE meters SET blocked = true WHERE meter_number = 'm2'")
                await other.execute("COMMIT")
                await other.execute("BEGIN")  # for the transaction block to end cleanly
                rows, created = await racing
                assert created == {"m3"}, "m2 was the other batch's to create"
                assert {n: r["blocked"] for n, r in rows.items()} == {"m1": True, "m2": True, "m3": False}
                locked = await other.fetch(
                    "SELECT meter_number FROM meters WHERE meter_number = ANY($1::text[]) FOR UPDATE SKIP LOCKED",
                    ["m1", "m2", "m3"],
                )
                assert locked == [], "every one of them is locked by this batch"
    finally:
        await other.close()
