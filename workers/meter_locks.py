"""Meters read, and locked as every writer of a meter's facts does before anything else, in one fixed order so that
concurrent batches cannot deadlock. One statement for every flow; it reads through the primary key, whatever the
size of the batch (db/migrations/0015_meter_search_off_the_hot_path.sql says why that needed care)."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from kernel.dbconn import Db

READ = "SELECT meter_number, utility_id, blocked FROM meters WHERE meter_number = ANY($1::text[]) ORDER BY meter_number"
LOCK = READ + " FOR UPDATE"


async def read_meters(conn: Db, meter_numbers: Iterable[str], lock: bool = True) -> dict[str, asyncpg.Record]:
    """The meters of these numbers that exist, by number; their rows locked FOR UPDATE unless `lock` is False."""
    rows = await conn.fetch(LOCK if lock else READ, sorted(set(meter_numbers)))
    return {r["meter_number"]: r for r in rows}
