"""A worker session keeps the generic plan it made on a new install's nearly empty tables until the tables are next
analysed (a minute or more at 1,000 attempts/s). Such a plan must read the batch's rows by key, not every row of
the live window: stop 47's soak found the responses' read of the lookups answered, and the open rounds' read of
their lookups, planned as reads of the window on a new install; PostgreSQL ran at a core for the first minute and
decisions took 2.6 s at p99. Measured here, not read off the plans: every statement a worker runs through the
guide's story, on the generic plan made after the story, runs after a busy half-minute's rows are added and again
after a second one (uncommitted, so nothing analyses them and the plans stay the ones made before). A read by key
touches about as many buffers the second time; a read of the window touches hundreds more.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from kernel.connections import create_pool
from kernel.dbconn import Db
from kernel.ids import new_id
from kernel.live_window import live_since_id, live_until_id
from kernel.settings import Settings
from tests.test_generic_plans import literal_args, story_statements
from workers.process import session_settings

ROWS = 30_000  # half a minute at 1,000 attempts/s: rounds, lookups and attempts, in the live window
# What a read by key may grow by when the tables grow by ROWS rows each: an index level more in a few partitions
# (measured: 0-2). A read of the window grew by 576.
GROWTH_ALLOWED = 100
# The form of the responses' read before stop 47: a join the planner was free to drive from the window of rounds.
WINDOW_READ = """SELECT now() AS now, l.lookup_id, r.reason FROM (SELECT now()) clock
    LEFT JOIN (lookups l JOIN lookup_rounds r USING (round_id))
           ON l.lookup_id = ANY($1::uuid[]) AND l.lookup_id >= $2 AND r.round_id >= $2
              AND l.lookup_id < $3 AND r.round_id < $3"""


async def _busy_minute(conn: Db) -> None:
    """ROWS rounds made now, each with a lookup and an attempt: routine ones closed, answered and decided, and one in
    fifty a new meter's round still open, its lookup unanswered."""
    rounds, meters = [new_id() for _ in range(ROWS)], [f"09{uuid.uuid4().int % 10**8:08d}" for _ in range(ROWS)]
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
        [new_id() for _ in range(ROWS)],
        rounds,
        meters,
    )
    await conn.execute(
        """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, decided_at, outcome,
                                          provider_id, reason, skipped)
           SELECT a, m, 'i1', now(), now(), 'routed', 'p1', 'routine', '[]'
           FROM unnest($1::uuid[], $2::text[]) u(a, m)""",
        [uuid.uuid4() for _ in range(ROWS)],
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


async def _growth(conn: Db, statements: dict[str, tuple[Any, ...]]) -> dict[str, tuple[int, int]]:
    """Each statement's buffers on its generic plan after one busy minute and after a second (one transaction,
    undone). A read bounded by design (the latest lookups of each provider, at most a number) stops growing once
    the first minute has filled it; a read of the window grows with each."""
    prepared: list[tuple[str, str, str]] = []
    for i, (sql, args) in enumerate(statements.items()):
        types, literals = await literal_args(conn, sql, args)
        await conn.execute(f"PREPARE g{i} ({', '.join(types)}) AS {sql}")
        await conn.execute(f"EXPLAIN EXECUTE g{i}({literals})")  # the generic plan made now, and kept
        prepared.append((sql, f"g{i}", literals))
    undone = conn.transaction()
    await undone.start()
    try:
        # The story's rounds open again, as the workers first read them (the story closed them all).
        await conn.execute("UPDATE lookup_rounds SET closed_at = NULL")
        await _busy_minute(conn)
        before = {sql: await _buffers(conn, name, lit) for sql, name, lit in prepared}
        await _busy_minute(conn)
        after = {sql: await _buffers(conn, name, lit) for sql, name, lit in prepared}
    finally:
        await undone.rollback()
    return {sql: (b, a) for sql, b in before.items() if b is not None and (a := after[sql]) is not None}


async def test_generic_plans_made_on_nearly_empty_tables_read_by_key_once_the_tables_grow(
    settings: Settings, topics: list[str], db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.database_url and session_settings(settings)["plan_cache_mode"] == "force_generic_plan"
    statements = await story_statements(settings, db, monkeypatch)
    control = [uuid.uuid4()], live_since_id(), live_until_id()  # an answer to no lookup, in today's window
    assert settings.database_url
    pool = await create_pool(settings.database_url, max_size=1, server_settings=session_settings(settings))
    try:
        async with pool.acquire() as conn:
            grown = await _growth(conn, {**statements, WINDOW_READ: control})
    finally:
        await pool.close()
    # The measurement can fail: the old form of the responses' read, planned the same way, grows with the window.
    before, after = grown.pop(WINDOW_READ)
    assert after - before > 4 * GROWTH_ALLOWED, f"the window read grew from {before} to {after} buffers only"
    reads = {" ".join(sql.split())[:100] for sql in grown}
    for expected in ("SELECT c.now, x.* FROM", "WITH open AS", "WITH recent AS"):
        assert any(r.startswith(expected) for r in reads), f"not measured: {expected}"
    growing = {" ".join(s.split())[:140]: (b, a) for s, (b, a) in grown.items() if a - b > GROWTH_ALLOWED}
    assert growing == {}, f"generic plans whose reads grow with the tables (buffers before, after): {growing}"
