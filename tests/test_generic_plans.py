"""The workers' sessions plan each statement once (generic plans, kernel/settings.py). A generic plan made on a new
install's nearly empty tables is kept as they grow: it must already be the read by key that the tables will need,
never a sequential scan (the plan trap issue #17 measured). Every statement the workers run with arguments through
the guide's story, each planned as a worker session plans it, on tables that hold only that story."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from asyncpg.connection import Connection

from kernel.connections import create_pool
from kernel.dbconn import Db
from kernel.settings import Settings
from tests.harness import PROVIDERS, eventually, plan_of, running, seed_reference
from workers.process import session_settings

SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
# Read whole by design, so a sequential scan is their plan at any size: reference data, read when its version changed
# (workers/reference_data.py), a row per relay process, and the catch-all partitions (empty unless a row falls
# outside every time partition: db/partitions.py).
READ_WHOLE = re.compile(r"providers|utility_routing_preferences|outbox_relays|\w+_default")
DATED_PARTITION = re.compile(r"_p[0-9]{8}\b")


async def story_statements(
    settings: Settings, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[Any, ...]]:
    """Each statement with arguments a worker session ran (the first arguments it ran with), through a new meter's
    broadcast and answers, a routine purchase, an operator's confirm-support and the rebroadcast it asks for, and a
    round left to expire."""
    seen: dict[str, tuple[Any, ...]] = {}
    # asyncpg's one path for every statement with arguments (fetch, fetchrow, fetchval, execute), and the settings a
    # connection was opened with: private, so not in its stubs.
    run = Connection._execute  # type: ignore[attr-defined]

    async def recorded(self: Connection, query: str, args: Any, *rest: Any, **kw: Any) -> Any:
        opened_with = self._params.server_settings or {}  # type: ignore[attr-defined]
        # A worker's session, not the test's. Not the sweeper's partition upkeep, which names one dated partition
        # (db/partitions.py) and runs once per partition made: a story that crosses midnight UTC makes one that
        # the databases compared against it, made from the same template, do not have.
        if args and "plan_cache_mode" in opened_with and not DATED_PARTITION.search(query):
            seen.setdefault(query, tuple(args))
        return await run(self, query, args, *rest, **kw)

    monkeypatch.setattr(Connection, "_execute", recorded)
    await seed_reference(db)
    decided = "SELECT count(*) FROM routing_decisions"
    async with running(settings.model_copy(update={"round_deadline_seconds": 2.0})) as system:
        await system.attempt("0401000001")
        requests = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
        await system.respond(requests["p1"], "supported", utility="Riverside")
        await system.respond(requests["p2"], "not_supported")
        await eventually(lambda: _at_least(db, decided, 1), what="the first decision")
        await system.attempt("0401000001")  # routine now
        await system.confirm_support("0401000001")
        mark = "SELECT count(*) FROM rebroadcast_marks WHERE meter_number = '0401000001'"
        await eventually(lambda: _at_least(db, mark, 1), what="the rebroadcast mark")
        open_rounds = "SELECT count(*) FROM lookup_rounds WHERE closed_at IS NULL"
        await eventually(lambda: _at_most(db, open_rounds, 0), what="the first round expired (p3 never answers)")
        await system.attempt("0401000001")  # rebroadcast to every provider
        again = await system.requests("p2", 1)  # p2 was asked only at first, and now
        assert again[0].data.reason == "rebroadcast"
        await system.respond(again[0], "supported")
        await eventually(lambda: _at_most(db, mark, 0), what="the mark cleared by the answer")
        await system.attempt("0401000002")  # nobody answers: the sweeper closes the round
        await eventually(lambda: _at_least(db, decided, 4), within=60, what="four decisions")
    monkeypatch.undo()
    return seen


async def _at_least(db: asyncpg.Connection, sql: str, n: int) -> bool:
    return int(await db.fetchval(sql)) >= n


async def _at_most(db: asyncpg.Connection, sql: str, n: int) -> bool:
    return int(await db.fetchval(sql)) <= n


async def literal_args(conn: Db, sql: str, args: tuple[Any, ...]) -> tuple[list[str], str]:
    """`sql`'s parameter types, and `args` written as literals of those types (for PREPARE and EXECUTE)."""
    types = [
        await conn.fetchval("SELECT format_type($1::oid, NULL)", t.oid)
        for t in (await conn.prepare(sql)).get_parameters()
    ]
    literals = [
        f"{await conn.fetchval(f'SELECT quote_nullable($1::{t}::text)', a)}::{t}"
        for t, a in zip(types, args, strict=True)
    ]
    return types, ", ".join(literals)


async def _generic_plan(conn: Db, name: str, sql: str, args: tuple[Any, ...]) -> str:
    """The plan a session of these settings keeps for `sql`: prepared with its parameters' types, explained with
    `args` written as literals (EXPLAIN EXECUTE shows the plan the session caches: generic, in these sessions)."""
    types, literals = await literal_args(conn, sql, args)
    await conn.execute(f"PREPARE {name} ({', '.join(types)}) AS {sql}")
    try:
        return await plan_of(conn, f"EXECUTE {name}({literals})")
    finally:
        await conn.execute(f"DEALLOCATE {name}")


async def test_every_worker_statement_keeps_a_read_by_key_planned_on_nearly_empty_tables(
    settings: Settings, topics: list[str], db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.database_url and settings.db_plan_cache_mode == "force_generic_plan"
    statements = await story_statements(settings, db, monkeypatch)
    tables = {"purchase_attempts", "lookup_rounds", "lookups", "meters", "meter_support", "outbox", "inbox"}
    touched = {t for sql in statements for t in tables if re.search(rf"\b{t}\b", sql)}
    assert touched == tables, f"the story reached {sorted(touched)}"
    worker = session_settings(settings)
    assert worker["plan_cache_mode"] == "force_generic_plan" and worker["enable_seqscan"] == "off"

    async def scans(server_settings: dict[str, str]) -> dict[str, list[str]]:
        assert settings.database_url
        pool = await create_pool(settings.database_url, max_size=1, server_settings=server_settings)  # as a worker's
        try:
            found: dict[str, list[str]] = {}
            async with pool.acquire() as conn:
                for i, (sql, args) in enumerate(statements.items()):
                    plan = await _generic_plan(conn, f"s{i}", sql, args)
                    if hit := [t for t in SEQ_SCAN.findall(plan) if not READ_WHOLE.fullmatch(t)]:
                        found[" ".join(sql.split())[:120]] = hit
            return found
        finally:
            await pool.close()

    found = await scans(worker)
    assert found == {}, f"generic plans that scan a table they should read by key: {found}"
    # What the setting prevents: the same generic plans, sequential scans allowed, on these nearly empty tables.
    trapped = {t for hit in (await scans({**worker, "enable_seqscan": "on"})).values() for t in hit}
    assert "meter_support" in trapped, f"the trap would not catch the batch's support facts here: {sorted(trapped)}"
