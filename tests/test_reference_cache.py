"""The reference data cache (workers/reference_data.py): read once, read again in the same statement whenever it
changed, never served stale, never mixed between databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from kernel.connections import Endpoints, connect
from tests.harness import seed_reference
from workers.reference_data import CACHE, KINDS
from workers.routing_context import FACTS, load_context


@pytest.fixture
async def second_db(endpoints: Endpoints, template_db: str) -> AsyncIterator[asyncpg.Connection]:
    """Another database made from the same template as `db`: it starts with the same rows, its own oid."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(endpoints.database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
        conn = await connect(endpoints.database_url.rsplit("/", 1)[0] + "/" + name)
        try:
            yield conn
        finally:
            await conn.close()
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def _reference_rows(db: asyncpg.Connection) -> int:
    """How many reference rows the batch statement returns for the version the cache holds now."""
    rows = await db.fetch(FACTS, ["m1"], ["i1"], CACHE.version())
    return sum(1 for r in rows if r[0] in KINDS)


async def test_unchanged_reference_data_is_not_read_again_and_a_change_is_seen_by_the_next_batch(
    db: asyncpg.Connection,
) -> None:
    await seed_reference(db)
    await db.execute("INSERT INTO meters (meter_number) VALUES ('m1')")
    first = await load_context(db, ["m1"], ["i1"])
    assert first.providers["p1"] == (True, "HEALTHY")
    assert await _reference_rows(db) == 0, "the cached version is current: the tables are not read"

    await db.execute("UPDATE providers SET enabled = false WHERE provider_id = 'p1'")
    assert await _reference_rows(db) > 0, "a change makes the cached copy stale"
    after = await load_context(db, ["m1"], ["i1"])
    assert after.providers["p1"] == (False, "HEALTHY")
    assert first.providers["p1"] == (True, "HEALTHY"), "a context already handed out does not change under its batch"

    await db.execute("DELETE FROM institution_providers WHERE institution_id = 'i1' AND provider_id = 'p2'")
    assert "p2" not in (await load_context(db, ["m1"], ["i1"])).institution_providers["i1"]
    await db.execute("INSERT INTO utilities VALUES ('u1', 'Utility One')")
    await db.execute(
        """INSERT INTO utility_routing_preferences (utility_id, provider_id, kind, rank, weight, institution_id)
           VALUES ('u1', 'p3', 'excluded', NULL, 1, 'i1')"""
    )
    await db.execute("UPDATE meters SET utility_id = 'u1' WHERE meter_number = 'm1'")
    assert [p.provider_id for p in (await load_context(db, ["m1"], ["i1"])).preferences[("i1", "u1")]] == ["p3"]


async def test_an_update_that_changes_nothing_keeps_the_cache(db: asyncpg.Connection) -> None:
    """The response consumer's "a DOWN provider that answers is back" runs with every batch and nearly always matches
    no row, or rewrites a row with its own values: neither invalidates the cache."""
    await seed_reference(db)
    await load_context(db, [], ["i1"])
    await db.execute("UPDATE providers SET health = 'DEGRADED' WHERE provider_id = 'p1' AND health = 'DOWN'")
    await db.execute("UPDATE providers SET enabled = enabled")
    assert await _reference_rows(db) == 0


async def test_a_second_database_never_gets_the_first_ones_reference_data(
    db: asyncpg.Connection, second_db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    await seed_reference(second_db)
    await second_db.execute("UPDATE providers SET enabled = false WHERE provider_id = 'p1'")
    # Bring both versions level, so only the database's id tells the two caches apart.
    v1 = await db.fetchval("SELECT version FROM reference_version")
    v2 = await second_db.fetchval("SELECT version FROM reference_version")
    for conn, behind in ((db, v2 - v1), (second_db, v1 - v2)):
        for _ in range(max(behind, 0)):
            await conn.execute("UPDATE providers SET enabled = NOT enabled WHERE provider_id = 'p3'")
    assert await db.fetchval("SELECT version FROM reference_version") == await second_db.fetchval(
        "SELECT version FROM reference_version"
    )
    assert (await load_context(db, [], ["i1"])).providers["p1"][0] is True
    assert (await load_context(second_db, [], ["i1"])).providers["p1"][0] is False
    assert (await load_context(db, [], ["i1"])).providers["p1"][0] is True
