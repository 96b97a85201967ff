"""A worker session keeps the generic plan it made on a new install's empty tables until their statistics change.
Stop 47's soak found such plans reading every row of the live window (each answer's round, each open round's
lookups, the decisions' update): PostgreSQL at a core and decisions at 2.6 s p99 for the first minute, until
autovacuum analysed the tables. The sweeper now analyses young tables within seconds (db/young_tables.py).

Measured here, not read off the plans, on three new installs: every statement a worker runs through the guide's
story is planned as a worker plans it on the empty tables; the first seconds of traffic come; on two of them (one
analysed empty, one never analysed) the sweeper's job runs; then the tables grow by a busy half-minute twice, and
each statement runs on its kept plan after each. A read by key touches about as many buffers the second time; a read
of the window touches hundreds more.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from db.young_tables import YOUNG_ROWS, analyze_young_tables
from kernel.connections import Endpoints, create_pool
from kernel.dbconn import Db
from kernel.ids import new_id
from kernel.live_window import live_since_id, live_until_id
from kernel.settings import Settings
from tests.conftest import drop_database, new_database
from tests.harness import seed_reference
from tests.test_generic_plans import literal_args, story_statements
from workers.process import session_settings

ROWS = 30_000  # half a minute at 1,000 attempts/s: rounds, lookups and attempts, in the live window
# What a read by key may grow by when the tables grow by ROWS rows each: an index level more in a few partitions
# (measured: 0-2 buffers). A read of the window grew by hundreds.
GROWTH_ALLOWED = 100
# The responses' read cut to three columns: a control, measured the same way, that reads the window without the job.
WINDOW_READ = """SELECT now() AS now, l.lookup_id, r.reason FROM (SELECT now()) clock
    LEFT JOIN (lookups l JOIN lookup_rounds r USING (round_id))
           ON l.lookup_id = ANY($1::uuid[]) AND l.lookup_id >= $2 AND r.round_id >= $2
              AND l.lookup_id < $3 AND r.round_id < $3"""


async def _busy(conn: Db, rows: int) -> None:
    """`rows` rounds made now, each with a lookup and an attempt: routine ones closed, answered and decided, and one
    in fifty a new meter's round still open, its lookup unanswered."""
    rounds, meters = [new_id() for _ in range(rows)], [f"09{uuid.uuid4().int % 10**8:08d}" for _ in range(rows)]
    await conn.execute(
        """INSERT INTO lookup_rounds (round_id, meter_number, reason, opened_at, deadline, closed_at, providers_asked,
                                      institution_id)
           SELECT r, m, CASE WHEN n % 50 = 0 THEN 'first_seen' ELSE 'routine' END, now(), now() + interval '1 minute',
                  CASE WHEN n % 50 <> 0 THEN now() END, ARRAY['p1'], 'i1'
           FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY u(r, m, n)""",
        rounds,
        meters,
    )
    await conn.execute(
        """INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at, responded_at, status)
           SELECT l, r, m, 'p1', now(), CASE WHEN n % 50 <> 0 THEN now() END, CASE WHEN n % 50 <> 0 THEN 'supported' END
           FROM unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY u(l, r, m, n)""",
        [new_id() for _ in range(rows)],
        rounds,
        meters,
    )
    await conn.execute(
        """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, decided_at, outcome,
                                          provider_id, reason, skipped)
           SELECT a, m, 'i1', now(), now(), 'routed', 'p1', 'routine', '[]'
           FROM unnest($1::uuid[], $2::text[]) u(a, m)""",
        [uuid.uuid4() for _ in range(rows)],
        meters,
    )


async def _buffers(conn: Db, name: str, literals: str) -> int | None:
    """Buffers the prepared statement's cached plan touches, run and undone; None when it cannot run again here (an
    insert of the story's own keys)."""
    await conn.execute("SAVEPOINT measured")
    try:
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({literals})")
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.execute("ROLLBACK TO SAVEPOINT measured")
    top = json.loads(plan)[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


# The story's rows, copied into the new install once its plans are made: what the statements' arguments refer to.
STORY_TABLES = ("utilities", "meters", "meter_support", "lookup_rounds", "lookups", "purchase_attempts")


async def _copy_story(story: asyncpg.Connection, conn: Db) -> None:
    for table in STORY_TABLES:
        rows = await story.fetchval(f"SELECT coalesce(json_agg(t), '[]')::text FROM {table} t")
        await conn.execute(f"INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::json)", rows)
    # Open again, as the workers first read them (the story closed them all).
    await conn.execute("UPDATE lookup_rounds SET closed_at = NULL")


async def _measure(conn: Db, prepared: list[tuple[str, str, str]]) -> dict[str, int | None]:
    async with conn.transaction():
        return {sql: await _buffers(conn, name, lit) for sql, name, lit in prepared}


async def _growth(
    url: str,
    story: asyncpg.Connection,
    statements: dict[str, tuple[Any, ...]],
    settings: Settings,
    job: bool,
    analysed_empty: bool = True,
) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """On the new install at `url`: each statement's buffers on its kept generic plan after one busy half-minute and
    after a second; with the sweeper's job run (`job`) after the first seconds of traffic, and the tables it
    analysed. The tables start analysed empty (`analysed_empty`: as `make bench` and `ppu soak` leave a new database)
    or never analysed (as the migrations leave one)."""
    load = await asyncpg.connect(url)
    pool = await create_pool(url, max_size=1, server_settings=session_settings(settings))
    try:
        if analysed_empty:
            await load.execute("ANALYZE")
        # No autovacuum to make the plans again meanwhile: only the job, where it runs.
        for table in await load.fetch(
            "SELECT oid::regclass::text FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = current_schema()::regnamespace"
        ):
            await load.execute(f"ALTER TABLE {table[0]} SET (autovacuum_enabled = off)")
        async with pool.acquire() as conn:
            prepared: list[tuple[str, str, str]] = []
            for i, (sql, args) in enumerate(statements.items()):
                types, literals = await literal_args(conn, sql, args)
                await conn.execute(f"PREPARE g{i} ({', '.join(types)}) AS {sql}")
                await conn.execute(f"EXPLAIN EXECUTE g{i}({literals})")  # the generic plan made now, and kept
                prepared.append((sql, f"g{i}", literals))
            await _copy_story(story, load)
            await _busy(load, YOUNG_ROWS + 200)  # the first seconds of traffic
            await load.execute("SELECT pg_stat_force_next_flush()")  # counted where the sweeper reads it
            analysed = await analyze_young_tables(conn) if job else []
            for _, name, literals in prepared:  # the plans made again now where the job invalidated them
                await conn.execute(f"EXPLAIN EXECUTE {name}({literals})")
            await _busy(load, ROWS)
            before = await _measure(conn, prepared)
            await _busy(load, ROWS)
            after = await _measure(conn, prepared)
    finally:
        await pool.close()
        await load.close()
    grown = {sql: (b, a) for sql, b in before.items() if b is not None and (a := after[sql]) is not None}
    return grown, analysed


async def _new_install(endpoints: Endpoints, template_db: str) -> str:
    """A database migrated and given its reference data, nothing else: an install about to start."""
    url = await new_database(endpoints, template_db)
    conn = await asyncpg.connect(url)
    try:
        await seed_reference(conn)
    finally:
        await conn.close()
    return url


@pytest.fixture
async def new_installs(endpoints: Endpoints, template_db: str) -> AsyncIterator[tuple[str, ...]]:
    urls = tuple([await _new_install(endpoints, template_db) for _ in range(3)])
    yield urls
    for url in urls:
        await drop_database(endpoints, url)


def _growing(grown: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {" ".join(s.split())[:140]: (b, a) for s, (b, a) in grown.items() if a - b > GROWTH_ALLOWED}


async def test_generic_plans_of_a_new_install_read_by_key_once_the_sweeper_has_analysed_its_young_tables(
    settings: Settings,
    topics: list[str],
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    new_installs: tuple[str, ...],
) -> None:
    assert session_settings(settings)["plan_cache_mode"] == "force_generic_plan"
    window_args = ([uuid.uuid4()], live_since_id(), live_until_id())  # an answer to no lookup, in today's window
    statements = {**await story_statements(settings, db, monkeypatch), WINDOW_READ: window_args}
    without, _ = await _growth(new_installs[0], db, statements, settings, job=False)
    # The measurement can fail, and without the job the trap is there: the control grows with the window, and so
    # does a worker's own statement (the provider health's read, on PostgreSQL 15).
    trapped = _growing(without)
    assert any(s.startswith("SELECT now() AS now, l.lookup_id, r.reason") for s in trapped), trapped
    assert len(trapped) >= 2, f"no worker statement grew without the job: {trapped}"
    with_job, analysed = await _growth(new_installs[1], db, statements, settings, job=True)
    assert {"lookups", "lookup_rounds", "purchase_attempts"} <= {t.split(".")[1] for t in analysed}
    reads = {" ".join(sql.split())[:100] for sql in with_job}
    for expected in ("SELECT c.now, x.* FROM", "WITH open AS", "WITH recent AS"):
        assert any(r.startswith(expected) for r in reads), f"not measured: {expected}"
    assert _growing(with_job) == {}, "generic plans whose reads grow with the tables (buffers before, after)"
    never_analysed, analysed = await _growth(new_installs[2], db, statements, settings, job=True, analysed_empty=False)
    assert {"lookups", "lookup_rounds", "purchase_attempts"} <= {t.split(".")[1] for t in analysed}
    assert _growing(never_analysed) == {}, "the same from tables never analysed (buffers before, after)"
