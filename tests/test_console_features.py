"""Console features beyond security: search order, routing preference edits, users add."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from console.queries import search_meters
from kernel.passwords import verify_password
from kernel.settings import Settings
from tests.conftest import ROOT, cli_env
from tests.console_server import login, serving
from tests.harness import plan_of, seed_reference
from workers import meter_locks


async def test_search_lists_prefix_matches_first_then_others_capped(db: asyncpg.Connection) -> None:
    meters = ["1234500", "1234501", "9912345", "5512345", "0001234"] + [f"77{i:05d}" for i in range(30)]
    await db.executemany("INSERT INTO meters (meter_number) VALUES ($1)", [(m,) for m in meters])
    assert await search_meters(db, "12345") == ["1234500", "1234501", "5512345", "9912345"]
    assert await search_meters(db, "12") == ["1234500", "1234501"], "under three characters: prefix only"
    assert len(await search_meters(db, "77")) == 10, "capped"
    assert await search_meters(db, "12'; DROP TABLE meters; --") == []
    assert await db.fetchval("SELECT count(*) FROM meters") == len(meters)


async def test_the_search_index_is_not_one_a_batch_of_meters_can_be_read_by(db: asyncpg.Connection) -> None:
    """A trigram index on the column answers `=` too, and PostgreSQL chose it for the hot path's batches of a few
    hundred meters: 468 ms instead of 1 ms (the soak's stalls). The search keeps its index; batches use the key."""
    await db.execute(
        "INSERT INTO meters (meter_number) SELECT '06' || lpad(g::text, 8, '0') FROM generate_series(1, 15000) g"
    )
    await db.execute("ANALYZE meters")

    batch = [f"06{i * 7:08d}" for i in range(1, 401)]
    locked = await plan_of(db, meter_locks.LOCK, batch)  # what every flow runs (read_meters)
    assert "meters_pkey" in locked and "gin" not in locked.lower() and "infix" not in locked
    gated = await plan_of(db, meter_locks.LOCK_AFTER_KEYS, batch, [1, 2], 3)  # the lookup's, after attempt locks
    assert "meters_pkey" in gated and "infix" not in gated and "One-Time Filter" in gated
    async with db.transaction():  # the search's query matches its index (PostgreSQL takes it when it pays)
        await db.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        await db.execute("SET LOCAL enable_indexonlyscan = off")
        searched = await plan_of(
            db, "SELECT meter_number FROM meters WHERE lower(meter_number) LIKE '%' || lower($1) || '%'", "00123"
        )
    assert "meters_number_infix" in searched
    every = [f"06{g:08d}" for g in range(1, 15001)]
    assert await search_meters(db, "00123") == sorted(m for m in every if "00123" in m)[:10]


@pytest.fixture
async def console(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[str]:
    await seed_reference(db)
    await db.execute("INSERT INTO utilities VALUES ('u1', 'Utility One')")
    async with serving(settings) as (base, _):
        yield base


async def test_admin_edits_utility_preferences_operator_cannot(console: str, db: asyncpg.Connection) -> None:
    async with httpx.AsyncClient(base_url=console, timeout=20) as c:
        token = (await login(c, "olga")).json()["csrf_token"]
        r = await c.post(
            "/ppu/routing/u1",
            data={"csrf_token": token, "provider_id": "p2", "kind": "ranked", "rank": "1", "weight": "1"},
        )
        assert r.status_code == 403
    async with httpx.AsyncClient(base_url=console, timeout=20) as c:
        token = (await login(c, "ada")).json()["csrf_token"]
        r = await c.post(
            "/ppu/routing/u1",
            data={"csrf_token": token, "provider_id": "p2", "kind": "ranked", "rank": "1", "weight": "1"},
        )
        assert r.status_code == 303
        bad = await c.put(
            "/api/v1/utilities/u1/preferences/p3", headers={"X-CSRF-Token": token}, json={"kind": "ranked"}
        )
        assert bad.status_code == 422, "ranked needs a rank"
        page = await c.get("/ppu/routing")
        assert "Utility One" in page.text and "p2" in page.text
    row = await db.fetchrow("SELECT kind, rank FROM utility_routing_preferences WHERE utility_id = 'u1'")
    assert row is not None and (row["kind"], row["rank"]) == ("ranked", 1)
    audit = await db.fetch("SELECT actor, outcome FROM audit_log WHERE action = 'set_utility_preference'")
    assert [(a["actor"], a["outcome"]) for a in audit] == [("ada", "changed")]


async def users_add(settings: Settings, username: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    args = ["users", "add", "--institution", "i1", "--username", username, "--role", role, "--password-stdin"]
    return await ppu(settings, args, password + "\n")


async def ppu(settings: Settings, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ppu.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(settings),
        cwd=ROOT,
        timeout=60,
    )


async def test_users_add_hashes_the_password(settings: Settings, db: asyncpg.Connection) -> None:
    await seed_reference(db)
    done = await users_add(settings, "newbie", "operator", "a long enough secret")
    assert done.returncode == 0, done.stderr
    stored = await db.fetchval("SELECT password_hash FROM console_users WHERE username = 'newbie'")
    assert stored.startswith("$argon2id$") and verify_password(stored, "a long enough secret")
    short = await users_add(settings, "x", "admin", "short")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr


async def test_users_revoke_and_a_password_reset_end_the_users_sessions(
    settings: Settings, db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    olga = await db.fetchval("SELECT user_id FROM console_users WHERE username = 'olga'")
    live = "SELECT count(*) FROM console_sessions WHERE user_id = $1 AND revoked_at IS NULL"
    add = "INSERT INTO console_sessions (session_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')"
    await db.executemany(add, [("a" * 64, olga), ("b" * 64, olga)])
    done = await ppu(settings, ["users", "revoke", "--institution", "i1", "--username", "olga"])
    assert done.returncode == 0 and "2 session(s)" in done.stdout, done.stderr
    assert await db.fetchval(live, olga) == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'users_revoke'") == 1
    await db.execute(add, "c" * 64, olga)
    assert (await users_add(settings, "olga", "operator", "a brand new long secret")).returncode == 0
    assert await db.fetchval(live, olga) == 0, "a password reset ends the old sessions"
    unknown = await ppu(settings, ["users", "revoke", "--institution", "i1", "--username", "nobody"])
    assert unknown.returncode == 1 and unknown.stderr.strip() == "ppu: no user nobody at i1"


async def test_meter_page_warns_about_unhealthy_or_disabled_providers(console: str, db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO meters (meter_number) VALUES ('0401000321')")
    async with httpx.AsyncClient(base_url=console, timeout=20) as c:
        await login(c, "olga")
        assert 'id="health-warning"' not in (await c.get("/ppu/meters/0401000321")).text
        await db.execute("UPDATE providers SET health = 'DOWN' WHERE provider_id = 'p2'")
        await db.execute("UPDATE providers SET enabled = false WHERE provider_id = 'p3'")
        page = (await c.get("/ppu/meters/0401000321")).text
    start = page.index('id="health-warning"')
    warning = page[start : page.index("</p>", start)]
    assert "p2 is DOWN" in warning and "p3 is disabled" in warning and "p1" not in warning
    assert warning.count("p2") == 1, "each provider once"


async def test_meter_page_shows_electrum_provider_ids_what_a_201_said_and_misconfigured_providers(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    from schemas.lookup import CustomerInfo, LookupResponded, LookupRespondedData, UtilityInfo
    from schemas.purchase import Money
    from tests.harness import ELECTRUM_IDS, eventually, running

    await seed_reference(db)
    await db.execute(
        "UPDATE providers SET health = 'MISCONFIGURED', health_detail = 'HTTP 400 FORMAT_ERROR: client.id' "
        "WHERE provider_id = 'p3'"
    )
    async with running(settings) as s:
        await s.attempt("0401000700")
        request = (await s.requests("p1", 1))[0]
        d = request.data
        answer = LookupRespondedData(
            lookup_id=d.lookup_id,
            provider_id="p1",
            meter_number=d.meter_number,
            status="supported",
            responded_at=request.time,
            utility=UtilityInfo(name="Riverside Municipality", address="1 Civic Way"),
            customer=CustomerInfo(first_name="Thandi", last_name="Mokoena", address="12 Main Road"),
            min_amount=Money(amount=1000, currency="710"),
            max_amount=Money(amount=500000, currency="710"),
        )
        await s.send("lookup_responses", LookupResponded.new(answer, source="test/p1", correlationid="c"))
        await eventually(
            lambda: db.fetchval(
                "SELECT details IS NOT NULL FROM meter_support WHERE meter_number = '0401000700' AND provider_id = 'p1'"
            ),
            what="details stored",
        )
    async with serving(settings) as (base, _), httpx.AsyncClient(base_url=base, timeout=20) as c:
        await login(c, "olga")
        api = (await c.get("/api/v1/meters/0401000700")).json()
        page = (await c.get("/ppu/meters/0401000700")).text
        health = (await c.get("/ppu/providers")).text
    p1 = next(p for p in api["providers"] if p["provider_id"] == "p1")
    assert p1["electrum_id"] == ELECTRUM_IDS["p1"] and p1["details"]["customer"]["last_name"] == "Mokoena"
    assert p1["details"]["min_amount"] == {"amount": 1000, "currency": "710"}
    assert f'<td class="provider-id">{ELECTRUM_IDS["p1"]}</td>' in page, "the guide's Provider ID column"
    assert "Thandi Mokoena, 12 Main Road" in page and "10.00 to 5000.00 (710)" in page
    assert "Riverside Municipality, 1 Civic Way" in page
    assert "Provider p3 is MISCONFIGURED (HTTP 400 FORMAT_ERROR: client.id)" in page
    assert "MISCONFIGURED" in health and "client.id" in health
