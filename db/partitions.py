"""Time partitions of the append-only history and retention by dropping them whole (migration 0013).

Each history table is range-partitioned on a time key: its own UUIDv7 id where the rows have one (kernel/ids.py),
else a time the database sets. Partitions are `<table>_pYYYYMMDD` (the day they start), `step_days` wide, aligned to
whole UTC days since 1970; maintenance creates them `AHEAD_DAYS` ahead and drops those whose end is older than the
table's retention. A table whose width changed keeps its partitions, and what they leave of a new step gets a
partition of its own. A DEFAULT partition takes rows that no dated partition covers (maintenance that has not run,
a row from an old install): nothing is refused, and maintenance moves such rows into the partition it creates over
them and deletes the rest by `time_column` after the retention.

Hand-written rather than pg_partman (Debian ships it as postgresql-15-partman): it is an extension the database
must have installed, which a user's managed PostgreSQL may not offer; what we need is these hundred lines.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from kernel.dbconn import Db
from kernel.errors import PpuError
from kernel.ids import id_floor, id_time
from kernel.live_window import LIVE_DAYS

AHEAD_DAYS = 7
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class History:
    table: str
    key: str  # the partition key
    time_column: str  # the row's time, for rows in the DEFAULT partition
    by_id: bool  # the key is a UUIDv7: bounds are ids made at the partition's times
    step_days: int
    keep_days: int  # the retention when PPU_RETENTION_DAYS says nothing of this table


# A week wide where the hot path reads the live window (kernel/live_window.py, 7 days) by a key that is not the
# partition key (an attempt id, a meter): each partition in the window is one more index probe per key. Over 10
# million attempts of history, daily partitions made the attempt-id read of a 500-attempt batch 9 probes of each id,
# 14 ms and 2.8 ms planning; one partition 1.1 ms and 0.5 ms. A week keeps the window within two.
HISTORY = (
    History("purchase_attempts", "recorded_at", "recorded_at", False, 7, 90),
    History("lookup_rounds", "round_id", "opened_at", True, 7, 90),
    History("lookups", "lookup_id", "sent_at", True, 7, 90),
    History("audit_log", "at", "at", False, 30, 400),
    History("login_failures", "at", "at", False, 1, 30),
)
BY_TABLE = {h.table: h for h in HISTORY}


@dataclass
class Maintained:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved: int = 0  # rows moved out of DEFAULT partitions
    expired: int = 0  # rows deleted from DEFAULT partitions after the retention


def retention(overrides: Mapping[str, int]) -> dict[str, int]:
    """Days kept per table: the defaults above with the operator's overrides; refuses what cannot work."""
    unknown = sorted(set(overrides) - set(BY_TABLE))
    if unknown:
        raise PpuError(f"PPU_RETENTION_DAYS names unknown tables {unknown}; it takes {sorted(BY_TABLE)}")
    kept = {h.table: overrides.get(h.table, h.keep_days) for h in HISTORY}
    for table, days in kept.items():
        # The hot path reads the live window (kernel/live_window.py); its partitions must outlive it.
        if days <= LIVE_DAYS:
            raise PpuError(f"PPU_RETENTION_DAYS keeps {table} {days} days; it must keep more than {LIVE_DAYS}")
    return kept


def _start(h: History, day: date) -> date:
    n = (day - EPOCH).days
    return EPOCH + timedelta(days=n - n % h.step_days)


def _bound(h: History, day: date) -> datetime | uuid.UUID:
    at = datetime.combine(day, time(), UTC)
    return id_floor(at) if h.by_id else at


def _name(h: History, start: date) -> str:
    return f"{h.table}_p{start:%Y%m%d}"


def partition_for(h: History, day: date) -> str:
    """The name of the partition that holds `day` on a database whose partitions were all made at today's width."""
    return _name(h, _start(h, day))


async def ensure(conn: Db, h: History, start: date, end: date, done: Maintained) -> None:
    """Creates partitions over what of [start, end) no partition covers: one per step, or per gap between the
    partitions of another width (made before the width changed)."""
    day, have = _start(h, start), list((await spans(conn, h)).values())
    while day < end:
        upto = day + timedelta(days=h.step_days)
        for lo, hi in _uncovered(day, upto, have):
            done.moved += await _create(conn, h, lo, hi)
            done.created.append(_name(h, lo))
        day = upto


def _uncovered(lo: date, hi: date, have: list[tuple[date, date]]) -> list[tuple[date, date]]:
    gaps, at = [], lo
    for a, b in sorted(have):
        if b <= at or a >= hi:
            continue
        if a > at:
            gaps.append((at, a))
        at = max(at, b)
    return [*gaps, (at, hi)] if at < hi else gaps


_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


async def spans(conn: Db, h: History) -> dict[str, tuple[date, date]]:
    """The table's dated partitions and the days each covers [from, to), as the catalogue has their bounds."""
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass AND c.relname ~ '_p[0-9]{8}$' ORDER BY c.relname""",
        h.table,
    )
    out = {}
    for r in rows:
        found = _BOUNDS.search(r["bound"])
        assert found is not None, r["bound"]  # ours, made by _create
        out[r["relname"]] = (_day_of(h, found[1]), _day_of(h, found[2]))
    return out


def _day_of(h: History, bound: str) -> date:
    at = id_time(uuid.UUID(bound)) if h.by_id else datetime.fromisoformat(bound)
    return at.astimezone(UTC).date()


async def _create(conn: Db, h: History, day: date, upto: date) -> int:
    name, lo, hi = _name(h, day), _bound(h, day), _bound(h, upto)
    async with conn.transaction():
        # Rows the DEFAULT partition holds in this range move with the new partition, in one transaction: the
        # attach checks that none is left behind. Names are ours (the catalogue, dates), never user input.
        await conn.execute(f"CREATE TABLE {name} (LIKE {h.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        moved = await conn.fetchval(
            f"""WITH moved AS (DELETE FROM {h.table}_default WHERE {h.key} >= $1 AND {h.key} < $2 RETURNING *),
                     put AS (INSERT INTO {name} SELECT * FROM moved RETURNING 1)
                SELECT count(*) FROM put""",
            lo,
            hi,
        )
        await conn.execute(f"ALTER TABLE {h.table} ATTACH PARTITION {name} FOR VALUES FROM ('{lo}') TO ('{hi}')")
    return int(moved)


async def partitions(conn: Db, table: str) -> list[str]:
    """The table's dated partitions, oldest first."""
    return list(await spans(conn, BY_TABLE[table]))


async def maintain(
    conn: Db, keep: Mapping[str, int] | None = None, today: date | None = None, drop: bool = True
) -> Maintained:
    """Partitions from today to `AHEAD_DAYS` ahead; with `drop`, partitions (and DEFAULT rows) past retention
    dropped. `keep` is `retention(...)`'s answer; without it, the defaults."""
    today = today or datetime.now(UTC).date()
    kept = retention({}) if keep is None else dict(keep)
    done = Maintained()
    for h in HISTORY:
        await ensure(conn, h, today, today + timedelta(days=AHEAD_DAYS + 1), done)
        if not drop:
            continue
        cutoff = today - timedelta(days=kept[h.table])
        for name, (_, upto) in (await spans(conn, h)).items():
            if upto <= cutoff:
                await conn.execute(f"DROP TABLE {name}")
                done.dropped.append(name)
        status = await conn.execute(
            f"DELETE FROM {h.table}_default WHERE {h.time_column} < $1", datetime.combine(cutoff, time(), UTC)
        )
        done.expired += int(status.split()[-1])
    return done


async def maintain_quietly(conn: Db, keep: Mapping[str, int]) -> Maintained | None:
    """For the sweeper's hourly run: a lock that does not come within a few seconds (a long console query on a
    history table) leaves the work for the next run rather than queueing the hot path behind it."""
    await conn.execute("SET lock_timeout = '3s'")
    try:
        return await maintain(conn, keep)
    except asyncpg.LockNotAvailableError:
        return None
    finally:
        await conn.execute("RESET lock_timeout")
