"""The history's time partitions (migration 0013, db/partitions.py): rows land in the day's partition, maintenance
creates partitions ahead and drops them after the retention, rows a DEFAULT partition holds move or expire, and an
install's history survives the change."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from db.migrate import migrate
from db.partitions import (
    AHEAD_DAYS,
    BY_TABLE,
    HISTORY,
    Maintained,
    ensure,
    maintain,
    partition_for,
    partitions,
    retention,
    spans,
)
from kernel.errors import PpuError
from kernel.ids import id_floor, id_time, new_id
from kernel.live_window import live_since, live_since_id, live_until, live_until_id
from kernel.settings import Settings
from tests.harness import eventually, installed_before, plan_of
from workers.routing_context import LOOKUP_FACTS
from workers.sweeper import run_sweeper


def _today() -> date:
    # Read when used, not at import: a run can cross midnight UTC between the two.
    return datetime.now(UTC).date()


def _day(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC)


def _holding(table: str, day: date) -> str:
    return partition_for(BY_TABLE[table], day)


async def _where(db: asyncpg.Connection, table: str, key: str, value: object) -> str:
    return str(await db.fetchval(f"SELECT tableoid::regclass::text FROM {table} WHERE {key} = $1", value))


async def test_a_migrated_database_has_partitions_from_today_ahead(db: asyncpg.Connection) -> None:
    for h in HISTORY:
        names = await partitions(db, h.table)
        first = datetime.strptime(names[0][-8:], "%Y%m%d").date()
        last = datetime.strptime(names[-1][-8:], "%Y%m%d").date()
        assert first <= _today() < first + timedelta(days=h.step_days), (h.table, names)
        assert last + timedelta(days=h.step_days) > _today() + timedelta(days=AHEAD_DAYS), (h.table, names)
    assert await db.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'lookups'") == "p"


async def test_rows_land_in_their_days_partition(db: asyncpg.Connection) -> None:
    attempt, round_id, lookup_id = uuid.uuid4(), new_id(), new_id()
    await db.execute(
        """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at)
           VALUES ($1, '0601', 'bank', now())""",
        attempt,
    )
    await db.execute(
        """INSERT INTO lookup_rounds (round_id, meter_number, reason, opened_at, deadline, providers_asked)
           VALUES ($1, '0601', 'first_seen', now(), now(), '{}')""",
        round_id,
    )
    await db.execute(
        """INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at)
           VALUES ($1, $2, '0601', 'pa', now())""",
        lookup_id,
        round_id,
    )
    for table, key, value in (
        ("purchase_attempts", "attempt_id", attempt),
        ("lookup_rounds", "round_id", round_id),
        ("lookups", "lookup_id", lookup_id),
    ):
        assert await _where(db, table, key, value) == _holding(table, _today())
    # A lookup by id is planned on its one partition (and the DEFAULT one), not on every one kept.
    plan = await plan_of(db, "SELECT * FROM lookups WHERE lookup_id = ANY($1::uuid[])", [lookup_id])
    later = _holding("lookups", _today() + timedelta(days=BY_TABLE["lookups"].step_days))
    assert _holding("lookups", _today()) in plan and later not in plan


async def test_maintenance_drops_whole_days_after_the_retention(db: asyncpg.Connection) -> None:
    old, kept = _today() - timedelta(days=40), _today() - timedelta(days=20)
    for d in (old, kept):  # the two days' partitions exist, as on a system running since then
        await maintain(db, {x.table: 400 for x in HISTORY}, today=d)
    for d in (old, kept):
        await db.execute(
            """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, recorded_at)
               VALUES ($1, '0602', 'bank', $2, $2)""",
            uuid.uuid4(),
            _day(d),
        )
        await db.execute(
            """INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at)
               VALUES ($1, $1, '0602', 'pa', $2)""",
            id_floor(_day(d)),
            _day(d),
        )
    keep = retention({"purchase_attempts": 30, "lookups": 30})
    done = await maintain(db, keep)
    assert _holding("purchase_attempts", old) in done.dropped and _holding("lookups", old) in done.dropped
    assert _holding("purchase_attempts", kept) not in done.dropped
    assert [r[0] for r in await db.fetch("SELECT recorded_at::date FROM purchase_attempts")] == [kept]
    assert [id_time(r[0]).date() for r in await db.fetch("SELECT lookup_id FROM lookups")] == [kept]
    # 90 days is the default for the other history tables: theirs from 40 days ago stay.
    assert _holding("lookup_rounds", old) in await partitions(db, "lookup_rounds")


async def test_rows_no_partition_covered_yet_move_in_when_one_is_made(db: asyncpg.Connection) -> None:
    # Beyond every partition made so far (a week's partition made ahead reaches up to 6 days further): the DEFAULT
    # takes it.
    later = _today() + timedelta(days=AHEAD_DAYS + 1 + 2 * BY_TABLE["lookups"].step_days)
    lookup_id = id_floor(_day(later))
    await db.execute(
        """INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at)
           VALUES ($1, $1, '0603', 'pa', $2)""",
        lookup_id,
        _day(later),
    )
    assert await _where(db, "lookups", "lookup_id", lookup_id) == "lookups_default"
    done = await maintain(db, today=later)
    assert done.moved >= 1
    assert await _where(db, "lookups", "lookup_id", lookup_id) == _holding("lookups", later)
    # And what stays in a DEFAULT partition past the retention is deleted by its time.
    await db.execute(
        "INSERT INTO login_failures (throttle_key, at) VALUES ('k', $1), ('k', now())", _day(_today() - timedelta(3000))
    )
    assert (await maintain(db)).expired == 1
    assert await db.fetchval("SELECT count(*) FROM login_failures") == 1


def test_retention_is_configured_per_table_and_refuses_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPU_RETENTION_DAYS", '{"lookups": 30, "audit_log": 730}')
    keep = retention(Settings().retention_days)
    assert keep["lookups"] == 30 and keep["audit_log"] == 730 and keep["purchase_attempts"] == 90
    with pytest.raises(PpuError, match="unknown tables"):
        retention({"lookup": 30})
    with pytest.raises(PpuError, match="must keep more than 7"):
        retention({"lookups": 7})


async def test_an_installs_history_survives_partitioning(db: asyncpg.Connection) -> None:
    await installed_before(db, 13)
    old_attempt, new_attempt = uuid.uuid4(), uuid.uuid4()
    await db.execute(
        """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, decided_at)
           VALUES ($1, '0604', 'bank', now() - interval '200 days', now() - interval '200 days'),
                  ($2, '0604', 'bank', now(), NULL)""",
        old_attempt,
        new_attempt,
    )
    await db.execute(
        f"""INSERT INTO routing_decisions (attempt_id, meter_number, outcome, reason, decided_at)
            VALUES ('{old_attempt}', '0604', 'routed', 'preferred', now() - interval '200 days');
            INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at)
            VALUES (gen_random_uuid(), gen_random_uuid(), '0604', 'pa', now() - interval '200 days');
            INSERT INTO audit_log (actor, action, outcome) VALUES ('olga', 'login', 'ok')"""
    )
    assert (await migrate(db))[:1] == [13]
    counts = [await db.fetchval(f"SELECT count(*) FROM {t}") for t in ("purchase_attempts", "routing_decisions")]
    assert counts == [2, 1]
    # Today's waiting attempt is in today's partition (the live window reads it there); the old one waits for
    # the retention in the DEFAULT partition, and goes with it.
    assert await _where(db, "purchase_attempts", "attempt_id", new_attempt) == _holding("purchase_attempts", _today())
    assert await _where(db, "purchase_attempts", "attempt_id", old_attempt) == "purchase_attempts_default"
    done = await maintain(db)
    assert done.expired == 2  # the old attempt with its decision on its row (0019), its lookup
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 1
    assert (
        await db.fetchval("INSERT INTO audit_log (actor, action, outcome) VALUES ('o', 'x', 'ok') RETURNING audit_id")
        == 2
    )


async def test_the_sweeper_maintains_the_partitions(db: asyncpg.Connection, database_url: str) -> None:
    ahead = _holding("lookups", _today() + timedelta(days=AHEAD_DAYS))
    await db.execute(f"DROP TABLE {ahead}")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    sweeper = asyncio.ensure_future(run_sweeper(pool, "sw.", stop, keep=retention({})))
    try:
        # Its first round (lease, deadlines, re-checks, retention, then the partitions) took over 10 s once, with the
        # rest of the suite on the same 2 cores.
        await eventually(lambda: _has(db, ahead), within=30, what="the sweeper to make the partition again")
    finally:
        stop.set()
        await sweeper
        await pool.close()


async def _has(db: asyncpg.Connection, name: str) -> bool:
    return bool(await db.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def test_the_hot_path_plans_the_live_window_s_partitions_not_those_made_ahead(db: asyncpg.Connection) -> None:
    """The lookup worker's facts statement is bounded at both ends (kernel/live_window.py): the partitions made a week
    ahead are left out while planning, not planned and scanned every batch."""
    await maintain(db, today=_today() + timedelta(days=AHEAD_DAYS))  # partitions two weeks ahead, at least
    args = (["0601"], ["bank"], "", [uuid.uuid4()], live_since(), live_since_id(), live_until(), live_until_id())
    plan = await plan_of(db, LOOKUP_FACTS, *args)
    for table in ("purchase_attempts", "lookup_rounds"):
        # A partition that starts after the window's end (a day ahead, kernel/live_window.py) is left out.
        far = [
            name for name, (start, _) in (await spans(db, BY_TABLE[table])).items() if start > _today() + timedelta(1)
        ]
        assert far, f"{table}: made ahead"
        assert _holding(table, _today()) in plan, table
        assert not [name for name in far if name in plan], f"{table}: a partition past the window is planned"


async def test_a_table_whose_width_changed_keeps_its_partitions_and_fills_what_they_leave(
    db: asyncpg.Connection,
) -> None:
    """An install made with daily partitions, maintained at a week's width: no partition overlaps another (the attach
    would fail), and every day from today to a week ahead is in a dated partition."""
    weekly = BY_TABLE["purchase_attempts"]
    daily = dataclasses.replace(weekly, step_days=1)
    for name in await partitions(db, weekly.table):
        await db.execute(f"DROP TABLE {name}")
    await ensure(db, daily, _today(), _today() + timedelta(days=AHEAD_DAYS + 1), Maintained())
    assert len(await partitions(db, weekly.table)) == AHEAD_DAYS + 1
    created = []
    for days in range(11):  # maintained every day from today on, as the sweeper does
        created += (await maintain(db, today=_today() + timedelta(days=days))).created
    covered = sorted((await spans(db, weekly)).values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(covered)), covered  # none overlaps
    assert any(b - a == timedelta(days=weekly.step_days) for a, b in covered), "the new width is made"
    assert [n for n in created if n.startswith(weekly.table)], created
    for offset in range(AHEAD_DAYS + 4):
        day = _day(_today() + timedelta(days=offset))
        await db.execute(
            """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, recorded_at)
               VALUES ($1, '0605', 'bank', $2, $2)""",
            uuid.uuid4(),
            day,
        )
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts_default") == 0
