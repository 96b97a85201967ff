"""Meters read, and locked as every writer of a meter's facts does before anything else, in one fixed order so that
concurrent batches cannot deadlock. One statement for every flow; it reads through the primary key, whatever the
size of the batch (db/migrations/0015_meter_search_off_the_hot_path.sql says why that needed care)."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from kernel.dbconn import Db

# With each meter's support ("provider=status,…", kept from meter_support by migration 0020's triggers): routing
# reads it here rather than from meter_support, sparing an index descent and its heap pages per meter.
READ = (
    "SELECT meter_number, utility_id, blocked, support FROM meters WHERE meter_number = ANY($1::text[])"
    " ORDER BY meter_number"
)
LOCK = READ + " FOR UPDATE"
# Transaction locks taken before the meters', in the same round trip ($2: their 32-bit keys, sorted; class $3). The
# subquery depends on no row, so PostgreSQL runs it once as a gate ("One-Time Filter") before the scan's first row,
# hence before any meter is locked: one order for every batch, which cannot deadlock.
# tests/test_attempt_id_race.py checks the order (which lock it waits on); tests/test_console_features.py the plan.
LOCK_AFTER_KEYS = (
    READ.replace(
        " ORDER BY",
        " AND (SELECT count(pg_advisory_xact_lock($3::int4, k)) FROM unnest($2::int4[]) AS k) >= 0 ORDER BY",
    )
    + " FOR UPDATE"
)


async def read_meters(
    conn: Db, meter_numbers: Iterable[str], lock: bool = True, key_locks: tuple[int, list[int]] | None = None
) -> dict[str, asyncpg.Record]:
    """The meters of these numbers that exist, by number; their rows locked FOR UPDATE unless `lock` is False.
    `key_locks`: a lock class and keys whose transaction locks are taken before the meters' (locking only)."""
    numbers = sorted(set(meter_numbers))
    if key_locks is not None and lock:
        rows = await conn.fetch(LOCK_AFTER_KEYS, numbers, sorted(set(key_locks[1])), key_locks[0])
    else:
        rows = await conn.fetch(LOCK if lock else READ, numbers)
    return {r["meter_number"]: r for r in rows}


async def lock_or_create(
    conn: Db, meter_numbers: Iterable[str], key_locks: tuple[int, list[int]] | None = None
) -> tuple[dict[str, asyncpg.Record], set[str]]:
    """Locks these meters, creating the ones that do not exist yet; returns their rows and the numbers created now.

    The known meters are locked first (one round trip when all are known, as in steady traffic), then the others are
    inserted, which locks them too. One that another transaction inserted meanwhile (its insert waited for that one
    to commit, and did nothing) is locked as a known one. Either order is by number: batches do not deadlock.
    `key_locks`: transaction locks taken before the meters' (`read_meters`).
    """
    numbers = sorted(set(meter_numbers))
    rows = await read_meters(conn, numbers, key_locks=key_locks)
    missing = [n for n in numbers if n not in rows]
    if not missing:
        return rows, set()
    created = {
        r["meter_number"]: r
        for r in await conn.fetch(
            """INSERT INTO meters (meter_number) SELECT unnest($1::text[]) ORDER BY 1
               ON CONFLICT DO NOTHING RETURNING meter_number, utility_id, blocked, support""",
            missing,
        )
    }
    rows |= created
    raced = [n for n in missing if n not in created]
    if raced:
        rows |= await read_meters(conn, raced)
    return rows, set(created)
