"""Each meter's row carries its support, kept from meter_support by migration 0020's triggers in the statement that
changes it: routing reads it with the meter (workers/meter_locks.py) instead of an index descent into meter_support."""

from __future__ import annotations

import asyncio

import asyncpg

from db.migrate import discover, migrate
from db.support_backfill import fill_support_summaries
from tests.harness import eventually, installed_before, seed_reference
from workers.routing_context import load_context


async def _support(db: asyncpg.Connection, meter: str) -> str | None:
    value: str | None = await db.fetchval("SELECT support FROM meters WHERE meter_number = $1", meter)
    return value


async def _row_version(db: asyncpg.Connection, meter: str) -> str:
    return str(await db.fetchval("SELECT xmin::text FROM meters WHERE meter_number = $1", meter))


async def test_the_meter_row_follows_every_change_of_its_support(db: asyncpg.Connection) -> None:
    await seed_reference(db)
    await db.execute("INSERT INTO meters (meter_number) VALUES ('m1'), ('m2')")
    assert await _support(db, "m1") == ""  # a new meter: summarised, no support yet

    # Inserted (several meters in one statement, providers out of order): ordered by provider.
    await db.execute(
        """INSERT INTO meter_support (meter_number, provider_id, status)
           VALUES ('m1', 'p2', 'not_supported'), ('m1', 'p1', 'supported'), ('m2', 'p3', 'unconfirmed')"""
    )
    assert await _support(db, "m1") == "p1=supported,p2=not_supported"
    assert await _support(db, "m2") == "p3=unconfirmed"

    # An upsert as the response consumer writes: a status changed, and a new provider.
    await db.execute(
        """INSERT INTO meter_support (meter_number, provider_id, status) VALUES ('m1', 'p2', 'supported'),
                  ('m1', 'p3', 'unconfirmed')
           ON CONFLICT (meter_number, provider_id) DO UPDATE SET status = excluded.status"""
    )
    assert await _support(db, "m1") == "p1=supported,p2=supported,p3=unconfirmed"

    # An answer that repeats a status changes other columns only: the meter's row is not written.
    before = await _row_version(db, "m1")
    await db.execute("UPDATE meter_support SET last_response_at = now() WHERE meter_number = 'm1'")
    assert await _row_version(db, "m1") == before

    await db.execute("DELETE FROM meter_support WHERE meter_number = 'm1' AND provider_id = 'p1'")
    assert await _support(db, "m1") == "p2=supported,p3=unconfirmed"
    await db.execute("DELETE FROM meter_support WHERE meter_number = 'm2'")
    assert await _support(db, "m2") == ""

    # Inside a transaction that is rolled back, nothing of it stays.
    tx = db.transaction()
    await tx.start()
    await db.execute("UPDATE meter_support SET status = 'not_supported' WHERE meter_number = 'm1'")
    assert await _support(db, "m1") == "p2=not_supported,p3=not_supported"
    await tx.rollback()
    assert await _support(db, "m1") == "p2=supported,p3=unconfirmed"

    await db.execute("TRUNCATE meter_support")
    assert await _support(db, "m1") == ""


async def _installed_with_meters(db: asyncpg.Connection, meters: int) -> None:
    """An install before migration 0020 with `meters` meters, each supported by pa and not by pb."""
    await installed_before(db, 20)
    await db.execute("INSERT INTO providers (provider_id, name) VALUES ('pa', 'A'), ('pb', 'B'), ('pc', 'C')")
    await db.execute("INSERT INTO meters SELECT '04' || lpad(g::text, 2, '0') FROM generate_series(1, $1) g", meters)
    await db.execute(
        """INSERT INTO meter_support (meter_number, provider_id, status)
           SELECT meter_number, p, CASE p WHEN 'pa' THEN 'supported' ELSE 'not_supported' END
           FROM meters, unnest(ARRAY['pb', 'pa']) p"""
    )


async def test_an_installs_meters_get_their_support_on_upgrade(db: asyncpg.Connection) -> None:
    await _installed_with_meters(db, 2)
    await db.execute("INSERT INTO meters (meter_number) VALUES ('0500')")  # no support rows
    assert (await migrate(db))[0] == 20
    assert await _support(db, "0401") == "pa=supported,pb=not_supported"
    assert await _support(db, "0500") == ""
    assert await db.fetchval("SELECT done_at IS NOT NULL FROM backfills WHERE name = 'meters.support'")
    await db.execute("UPDATE meter_support SET status = 'supported' WHERE provider_id = 'pb'")  # kept from now on
    assert await _support(db, "0401") == "pa=supported,pb=supported"


async def test_the_upgrade_fills_a_batch_per_transaction_and_routing_reads_the_rest_meanwhile(
    db: asyncpg.Connection, database_url: str
) -> None:
    await _installed_with_meters(db, 6)
    migrations = discover()
    # Every migration's changes, without the backfill that `migrate` runs after them.
    await migrate(db, before=migrations[-1].version + 1)
    assert [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations ORDER BY 1")] == [
        m.version for m in migrations
    ]
    assert await _support(db, "0401") is None  # not summarised yet

    # Routing, meanwhile, reads the support of a meter not summarised from meter_support.
    context = await load_context(db, ["0401", "0406"], [])
    assert context.meters["0401"].support == {"pa": "supported", "pb": "not_supported"}

    # A change meanwhile: the trigger summarises the meter, and the backfill must leave that summary be.
    await db.execute("UPDATE meter_support SET status = 'supported' WHERE meter_number = '0403' AND provider_id = 'pb'")
    assert await _support(db, "0403") == "pa=supported,pb=supported"

    # Another session holds the last meter's lock: the backfill's first batches commit, then it waits there.
    holder = await asyncpg.connect(database_url)
    other = await asyncpg.connect(database_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SET search_path TO upgraded, public")
        await holder.execute("SELECT 1 FROM meters WHERE meter_number = '0406' FOR UPDATE")
        filling = asyncio.ensure_future(fill_support_summaries(db, batch=2))
        await other.execute("SET search_path TO upgraded, public")

        async def first_batches_committed() -> bool:
            return bool(await other.fetchval("SELECT count(*) FROM meters WHERE support IS NOT NULL") >= 4)

        await eventually(first_batches_committed, within=10, what="batches committed before the held lock")
        assert not filling.done()
        assert await other.fetchval("SELECT next_key FROM backfills WHERE name = 'meters.support'") == "0404"
        # Routing goes on meanwhile for a meter outside the batch waiting on the lock.
        assert (await load_context(other, ["0402"], [], lock=True)).meters["0402"].support["pa"] == "supported"
        await tx.rollback()
        assert await asyncio.wait_for(filling, 10) == 5  # 0403 was summarised by its trigger
    finally:
        await holder.close()
        await other.close()
    assert await _support(db, "0403") == "pa=supported,pb=supported"
    assert await _support(db, "0406") == "pa=supported,pb=not_supported"
    assert await db.fetchval("SELECT count(*) FROM meters WHERE support IS NULL") == 0
    assert await fill_support_summaries(db) == 0  # done: nothing more, however often migrate runs
