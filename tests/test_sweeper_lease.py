"""Exactly one deadline sweeper is active across processes; expired rounds are closed and decided."""

from __future__ import annotations

import uuid

import asyncpg

from kernel.ids import new_id
from tests.harness import eventually, seed_reference
from workers.outbox_relay import unpublished
from workers.sweeper import sweep_budget, sweep_once, take_lease


async def test_one_holder_at_a_time_and_takeover_after_lapse(db: asyncpg.Connection, database_url: str) -> None:
    other = await asyncpg.connect(database_url)
    try:
        assert await take_lease(db, "a", 0.5)
        assert not await take_lease(other, "b", 0.5), "b must wait while a holds a live lease"
        assert await take_lease(db, "a", 0.5), "the holder renews"
        await eventually(lambda: take_lease(other, "b", 5), within=5, what="a's lease to lapse")
        assert not await take_lease(db, "a", 5)
        assert await sweep_once(db, "a", "") == 0, "a lapsed holder sweeps nothing"
        # Nor its budget: and the point it had reached is forgotten (b may have swept meanwhile), so that every open
        # wait is looked at when the lease is a's again; b's sweep reaches a point and says when to look next.
        since = await db.fetchval("SELECT now()")
        assert await sweep_budget(db, "a", "", 2.0, since) == (None, None)
        reached, _ = await sweep_budget(other, "b", "", 2.0, None)
        assert reached is not None
    finally:
        await other.close()


async def test_sweep_decides_waiting_attempts_of_expired_rounds(db: asyncpg.Connection) -> None:
    await seed_reference(db)
    await db.execute("INSERT INTO meters (meter_number) VALUES ('0401000099')")
    round_id, attempt_id = new_id(), uuid.uuid4()  # rounds and lookups have our UUIDv7 ids, attempts anyone's
    await db.execute(
        """INSERT INTO lookup_rounds VALUES ($1, '0401000099', 'first_seen', now() - interval '2 min',
                        now() - interval '1 min', NULL, '{p1,p2}')""",
        round_id,
    )
    await db.execute(
        """INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at)
                        VALUES ($1, $2, '0401000099', 'p1', now()), ($3, $2, '0401000099', 'p2', now())""",
        new_id(),
        round_id,
        new_id(),
    )
    await db.execute("""INSERT INTO meter_support (meter_number, provider_id, status) VALUES
                        ('0401000099', 'p1', 'supported'), ('0401000099', 'p2', 'unconfirmed')""")
    await db.execute(
        """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, round_id)
                        VALUES ($1, '0401000099', 'i1', now(), $2)""",
        attempt_id,
        round_id,
    )
    assert await take_lease(db, "s", 10)
    assert await sweep_once(db, "s", "x.") == 1
    row = await db.fetchrow("SELECT outcome, provider_id FROM routing_decisions WHERE attempt_id = $1", attempt_id)
    assert row is not None and (row["outcome"], row["provider_id"]) == ("routed", "p1")
    assert await db.fetchval("SELECT closed_at IS NOT NULL FROM lookup_rounds WHERE round_id = $1", round_id)
    topics = [m[0] for m in await unpublished(db)]
    assert topics == ["x.ppu.routing-decisions.v1", "x.ppu.meter-events.v1"]  # the decision, then RoundExpired
    assert await sweep_once(db, "s", "x.") == 0, "nothing left to sweep"
