"""Each meter's row carries its support, kept from meter_support by migration 0020's triggers in the statement that
changes it: routing reads it with the meter (workers/meter_locks.py) instead of an index descent into meter_support."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from db.migrate import migrate
from tests.harness import installed_before, seed_reference


async def _support(db: asyncpg.Connection, meter: str) -> str | None:
    value: str | None = await db.fetchval("SELECT support FROM meters WHERE meter_number = $1", meter)
    return value


async def _row_version(db: asyncpg.Connection, meter: str) -> str:
    return str(await db.fetchval("SELECT xmin::text FROM meters WHERE meter_number = $1", meter))


async def test_the_meter_row_follows_every_change_of_its_support(db: asyncpg.Connection) -> None:
    await seed_reference(db)
    await db.execute("INSERT INTO meters (meter_number) VALUES ('m1'), ('m2')")
    assert await _support(db, "m1") is None

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
    assert await _support(db, "m2") is None

    # Inside a transaction that is rolled back, nothing of it stays.
    tx = db.transaction()
    await tx.start()
    await db.execute("UPDATE meter_support SET status = 'not_supported' WHERE meter_number = 'm1'")
    assert await _support(db, "m1") == "p2=not_supported,p3=not_supported"
    await tx.rollback()
    assert await _support(db, "m1") == "p2=supported,p3=unconfirmed"

    await db.execute("TRUNCATE meter_support")
    assert await _support(db, "m1") is None


async def test_an_installs_meters_get_their_support_on_upgrade(db: asyncpg.Connection, tmp_path: Path) -> None:
    await installed_before(db, 20, tmp_path)
    await db.execute(
        """INSERT INTO providers (provider_id, name) VALUES ('pa', 'A'), ('pb', 'B');
           INSERT INTO meters (meter_number) VALUES ('0401'), ('0402');
           INSERT INTO meter_support (meter_number, provider_id, status)
               VALUES ('0401', 'pb', 'not_supported'), ('0401', 'pa', 'supported')"""
    )
    assert (await migrate(db))[0] == 20
    assert await _support(db, "0401") == "pa=supported,pb=not_supported"
    assert await _support(db, "0402") is None
    await db.execute("UPDATE meter_support SET status = 'supported' WHERE provider_id = 'pb'")  # kept from now on
    assert await _support(db, "0401") == "pa=supported,pb=supported"
