"""Deadline sweeper: closes expired rounds and decides the attempts still waiting on them; decides the attempts
whose wait crossed the purchase-time decision budget (domain/rounds.py) when a provider supports the meter.

Exactly one sweeper is active across processes: it holds a lease row that it renews; another process takes
the lease only when it has lapsed. The sweep itself re-checks the lease inside its transaction.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from db.partitions import maintain_quietly
from db.provider_health import refresh_states
from db.young_tables import analyze_young_tables
from kernel.dbconn import Db
from kernel.live_window import live_since, live_until
from messaging import metrics
from messaging.retrying import TRANSIENT, pause
from workers.auto_recheck import recheck_due
from workers.rounds import decide_waiting
from workers.unit_of_work import UnitOfWork

LEASE = "deadline-sweeper"
HEALTH_EVERY_SECONDS = 5.0
YOUNG_TABLES_EVERY_SECONDS = 2.0  # a new install's tables analysed within seconds of filling (db/young_tables.py)
INBOX_PURGE_EVERY_SECONDS = 60.0
PARTITIONS_EVERY_SECONDS = 3600.0
log = structlog.get_logger()


async def take_lease(conn: Db, holder: str, ttl_seconds: float) -> bool:
    taken = await conn.fetchval(
        """INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
           ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
           WHERE leases.holder = excluded.holder OR leases.expires_at < now()
           RETURNING holder""",
        LEASE,
        holder,
        ttl_seconds,
    )
    return bool(taken == holder)


async def sweep_once(conn: Db, holder: str, topic_prefix: str, limit: int = 200) -> int:
    """Decides what waits on expired rounds; returns how many attempts it decided."""
    async with conn.transaction():
        if not await _still_mine(conn, holder):
            return 0
        expired = await conn.fetch(
            """SELECT round_id, meter_number FROM lookup_rounds WHERE closed_at IS NULL AND deadline <= now()
               ORDER BY deadline LIMIT $1""",
            limit,
        )
        return await _decide(conn, topic_prefix, expired, expired=True)


async def sweep_budget(
    conn: Db, holder: str, topic_prefix: str, budget_seconds: float, since: datetime | None
) -> tuple[datetime | None, float | None]:
    """Decides the waits that crossed the budget after `since` (the database time the last sweep reached; None:
    every wait still open) where a Supported provider exists. An attempt with none waits for the next answer
    (the response consumer decides it then) or the deadline. Returns the time this sweep reached, and in how many
    seconds the next wait crosses the budget (None: no wait open, or the lease is not ours)."""
    async with conn.transaction():
        # The lease checked in the same round trip (`_still_mine`'s check): this loop runs for every budget crossed.
        found = await conn.fetchrow(
            f"""WITH waits AS (
                   SELECT round_id, meter_number, joined_at FROM purchase_attempts
                   WHERE decided_at IS NULL AND round_id IS NOT NULL AND ($2::timestamptz IS NULL OR joined_at > $2)
                     AND recorded_at >= $3 AND recorded_at < $4),
                    mine AS ({_held("$5", "$6")})
               SELECT EXISTS (SELECT FROM mine) AS mine, now() - make_interval(secs => $1) AS reached,
                      array(SELECT DISTINCT (round_id, meter_number) FROM waits
                            WHERE joined_at <= now() - make_interval(secs => $1)) AS due,
                      (SELECT extract(epoch FROM min(joined_at) + make_interval(secs => $1) - now()) FROM waits
                       WHERE joined_at > now() - make_interval(secs => $1))::float8 AS next_due_s""",
            budget_seconds,
            since,
            live_since(),
            live_until(),
            LEASE,
            holder,
        )
        assert found is not None
        if not found["mine"]:
            return None, None  # another holder may sweep meanwhile: every open wait is looked at when ours again
        due = [{"round_id": r, "meter_number": m} for r, m in found["due"]]
        await _decide(conn, topic_prefix, due, expired=False, budget_seconds=budget_seconds)
        reached: datetime = found["reached"]
        return reached, found["next_due_s"]


async def recheck_once(conn: Db, holder: str, topic_prefix: str) -> int:
    """The institutions' automatic re-checks (workers/auto_recheck.py), under the lease."""
    async with conn.transaction():
        if not await _still_mine(conn, holder):
            return 0
        work = UnitOfWork(conn, topic_prefix)
        marked = await recheck_due(conn, work)
        await work.outbox.flush(conn)
        return marked


def _held(name: str, holder: str) -> str:
    """The lease row if `holder` (a parameter) still holds the lease `name`, share-locked until the transaction ends."""
    return f"SELECT true FROM leases WHERE name = {name} AND holder = {holder} AND expires_at > now() FOR SHARE"


async def _still_mine(conn: Db, holder: str) -> bool:
    """Inside the sweep's transaction: a lapsed holder sweeps nothing (another may hold the lease now)."""
    held = await conn.fetchval(_held("$1", "$2"), LEASE, holder)
    return bool(held)


async def _decide(
    conn: Db, topic_prefix: str, rounds: Sequence[Mapping[str, Any]], expired: bool, budget_seconds: float | None = None
) -> int:
    """Decides what waits on these rounds ({round_id, meter_number}); returns how many attempts it decided."""
    if not rounds:
        return 0
    work = UnitOfWork(conn, topic_prefix)
    await work.lock_meters(r["meter_number"] for r in rounds)  # meters first, as every other writer
    round_ids = sorted({r["round_id"] for r in rounds}, key=str)
    decided = await decide_waiting(conn, work, round_ids, expired=expired, budget_seconds=budget_seconds)
    await work.outbox.flush(conn)
    return decided


async def run_sweeper(
    pool: asyncpg.Pool,
    topic_prefix: str,
    stop: asyncio.Event,
    interval: float = 0.5,
    ttl_seconds: float = 10.0,
    budget_seconds: float = 2.0,
    recheck_every: float = 60.0,
    keep: Mapping[str, int] | None = None,
) -> None:
    """The budget when the next wait crosses it (read from the database), the deadlines at least every `interval`,
    the provider health every few seconds, the automatic re-check every `recheck_every` seconds, the inbox
    retention every minute, the history's partitions and their retention (`keep`, db/partitions.py) hourly."""
    holder = f"sweeper-{uuid.uuid4().hex[:8]}"
    loops = [
        asyncio.ensure_future(_decide_on_budget(pool, holder, topic_prefix, stop, interval, budget_seconds)),
        asyncio.ensure_future(
            _keep_house(pool, holder, topic_prefix, stop, interval, ttl_seconds, recheck_every, keep)
        ),
    ]
    try:
        await asyncio.gather(*loops)  # one failing fails the sweeper (and its process: a supervisor restarts it)
    finally:
        for loop in loops:
            loop.cancel()


async def _decide_on_budget(
    pool: asyncpg.Pool, holder: str, topic_prefix: str, stop: asyncio.Event, interval: float, budget_seconds: float
) -> None:
    """A loop of its own, so that no housekeeping delays a decision: it wakes when the next wait crosses the budget
    (counted from when the sweep that saw it began), or every `interval` at the latest."""
    reached: datetime | None = None
    while not stop.is_set():
        began, next_due = time.monotonic(), None
        try:
            async with pool.acquire() as conn:
                reached, next_due = await sweep_budget(conn, holder, topic_prefix, budget_seconds, reached)
        except TRANSIENT as e:
            log.warning("sweeper cannot reach the database", error=str(e))
        await pause(
            stop, interval if next_due is None else min(interval, max(began + next_due - time.monotonic(), 0.005))
        )


async def _keep_house(
    pool: asyncpg.Pool,
    holder: str,
    topic_prefix: str,
    stop: asyncio.Event,
    interval: float,
    ttl_seconds: float,
    recheck_every: float,
    keep: Mapping[str, int] | None,
) -> None:
    """The lease, the deadlines, the re-checks, the inbox's and the history's retention, the statistics of young
    tables, the provider health."""
    # Each periodic job runs in the first round, then at its interval. Not from 0.0: the monotonic clock counts from
    # the machine's boot, so on one booted less than an hour ago the partitions waited for that hour (seen after a
    # reboot).
    refreshed = purged = rechecked = partitioned = analysed = -math.inf
    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                if await take_lease(conn, holder, ttl_seconds):
                    decided = await sweep_once(conn, holder, topic_prefix)
                    if decided:
                        log.info("expired rounds swept", attempts_decided=decided)
                    if time.monotonic() - rechecked > recheck_every:
                        rechecked = time.monotonic()
                        marked = await recheck_once(conn, holder, topic_prefix)
                        if marked:
                            log.info("automatic re-check marked meters", meters=marked)
                    if time.monotonic() - purged > INBOX_PURGE_EVERY_SECONDS:
                        purged = time.monotonic()
                        await conn.execute("DELETE FROM inbox WHERE received_at < now() - interval '7 days'")
                    if keep is not None and time.monotonic() - partitioned > PARTITIONS_EVERY_SECONDS:
                        partitioned = time.monotonic()
                        done = await maintain_quietly(conn, keep)
                        if done is None:
                            log.warning("history partitions not maintained: a lock did not come; next hour")
                        elif done.created or done.dropped or done.moved or done.expired:
                            log.info("history partitions maintained", **vars(done))
                    if time.monotonic() - analysed > YOUNG_TABLES_EVERY_SECONDS:
                        analysed = time.monotonic()
                        if young := await analyze_young_tables(conn):
                            log.info("young tables analysed", tables=young)
                    if time.monotonic() - refreshed > HEALTH_EVERY_SECONDS:
                        refreshed = time.monotonic()
                        figures, changes = await refresh_states(conn)
                        metrics.export_health(figures)
                        for provider, (before, after) in changes.items():
                            log.warning("provider health changed", provider=provider, before=before, after=after)
            metrics.LAST_PROGRESS.labels("sweeper").set_to_current_time()
        except TRANSIENT as e:
            log.warning("sweeper cannot reach the database", error=str(e))
        await pause(stop, interval)
