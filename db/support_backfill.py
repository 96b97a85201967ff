"""The support summary of the meters an install had before migration 0020, filled a batch per transaction.

In the migration's own transaction, the fill held a lock on every meter until it committed: 20-26 s over a million
meters, during which no purchase could be routed. Here each batch locks its meters for a moment, in key order as
every writer does (workers/meter_locks.py), and records how far it got (`backfills`), so that a run stopped halfway
goes on from there. Until a meter is filled, routing reads its support from meter_support
(workers/routing_context.py); a meter whose support changes meanwhile is filled by the triggers, and the backfill
leaves it be (`meters_support_refresh(…, unsummarised_only => true)`).
"""

from __future__ import annotations

import asyncpg
import structlog

log = structlog.get_logger()

NAME = "meters.support"
BATCH = 5000  # meters per transaction: ~0.1 s of locks each on this machine
PROGRESS_EVERY = 100_000

# The next batch of keys after the last done, locked in key order (as every writer locks them, so none waits on
# another in a cycle), and those of them not summarised yet.
NEXT = """SELECT max(meter_number) AS last, array_agg(meter_number) FILTER (WHERE support IS NULL) AS todo
          FROM (SELECT meter_number, support FROM meters WHERE meter_number > $1 ORDER BY meter_number LIMIT $2
                FOR UPDATE) b"""


async def fill_support_summaries(conn: asyncpg.Connection, batch: int = BATCH) -> int:
    """Fills what is left; returns how many meters it filled (0 once done: one indexed read)."""
    filled = 0
    while True:
        async with conn.transaction():
            after = await conn.fetchval(
                "SELECT next_key FROM backfills WHERE name = $1 AND done_at IS NULL FOR UPDATE", NAME
            )
            if after is None:  # done, or never needed
                return filled
            step = await conn.fetchrow(NEXT, after, batch)
            assert step is not None  # an aggregate's one row
            if step["last"] is None:
                await conn.execute("UPDATE backfills SET done_at = now() WHERE name = $1", NAME)
                if filled:
                    log.info("support summaries filled", meters=filled)
                return filled
            if step["todo"]:
                status = await conn.execute(
                    "SELECT meters_support_refresh($1::text[], unsummarised_only => true)", step["todo"]
                )
                assert status == "SELECT 1", status
                filled += len(step["todo"])
                if filled // PROGRESS_EVERY != (filled - len(step["todo"])) // PROGRESS_EVERY:
                    log.info("filling support summaries", meters=filled, up_to=step["last"])  # minutes on a big install
            await conn.execute("UPDATE backfills SET next_key = $2 WHERE name = $1", NAME, step["last"])
