"""A meter's history (operations/timeline.py): every round, answer, decision and command the viewer may see,
newest first, paged — and nothing of another institution's rounds, decisions or commands."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from kernel.settings import Settings
from operations.tenancy import Tenant
from operations.timeline import TIMELINE
from tests.console_server import login, serving
from tests.harness import System, eventually, running, seed_reference

METER = "0401000061"


@pytest.fixture
async def system(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[System]:
    await seed_reference(db)
    async with running(settings.model_copy(update={"round_deadline_seconds": 2.0})) as s:
        yield s


async def test_the_story_of_a_meter_newest_first_for_each_institution_its_own(
    system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    first = await system.attempt(METER)
    asked = {p: (await system.requests(p, 1))[0] for p in ("p1", "p2", "p3")}
    await system.respond(asked["p1"], "not_supported")
    await system.respond(asked["p2"], "not_supported")
    await eventually(lambda: db.fetchval("SELECT blocked FROM meters WHERE meter_number = $1", METER), what="blocked")
    await system.confirm_support(METER)  # i1's operator
    await eventually(lambda: db.fetchval("SELECT count(*) FROM rebroadcast_marks"), what="the mark")
    await system.attempt(METER)
    again = {p: (await system.requests(p, 1))[0] for p in ("p1", "p2", "p3")}
    assert {r.data.reason for r in again.values()} == {"rebroadcast"}
    await system.respond(again["p1"], "supported")
    await eventually(lambda: db.fetchval("SELECT count(*) = 2 FROM routing_decisions"), what="both purchases decided")

    mine = await Tenant("i1").timeline(db, METER)
    assert mine is not None
    assert [e.at for e in mine] == sorted((e.at for e in mine), reverse=True), "newest first"
    seen = {(e.kind, e.what) for e in mine}
    assert {("round", "first_seen"), ("round", "rebroadcast"), ("decision", "blocked"), ("decision", "routed")} <= seen
    assert {("answer", "not_supported"), ("answer", "supported"), ("command", "confirm_support: marked")} <= seen
    first_round = next(e for e in mine if e.what == "first_seen")
    assert first_round.who == "p1, p2, p3" and first_round.detail and "deadline" in first_round.detail
    assert str(first.data.attempt_id) not in repr(mine), "what a decision says, not internal ids"

    theirs = await Tenant("i2").timeline(db, METER)  # i2 has p1 only, and made no purchase or command here
    assert theirs is not None
    assert {e.kind for e in theirs} == {"round", "answer"}
    assert {e.what for e in theirs if e.kind == "round"} == {"first_seen"}, "not i1's rebroadcast round"
    assert {e.who for e in theirs} == {"p1"}, "only its own provider, asked and answering"

    pages, before = [], None
    while True:  # two at a time, by the time cursor: the same entries, in the same order
        page = await Tenant("i1").timeline(db, METER, before, limit=2)
        assert page is not None
        pages += page
        if len(page) < 2:
            break
        before = page[-1].at
    assert [(e.at, e.kind, e.what) for e in pages] == [(e.at, e.kind, e.what) for e in mine]

    async with serving(settings) as (base, _), httpx.AsyncClient(base_url=base, timeout=20) as c:
        await login(c, "olga")
        api = (await c.get(f"/api/v1/meters/{METER}/timeline", params={"limit": 3})).json()
        assert [e["kind"] for e in api["entries"]] == [e.kind for e in mine[:3]] and api["older"] is not None
        html = (await c.get(f"/ppu/meters/{METER}")).text
        assert 'id="history"' in html and "confirm_support: marked" in html
        assert (await c.get("/api/v1/meters/0409999999/timeline")).status_code == 404
        await login(c, "wes", institution="i2")
        html = (await c.get(f"/ppu/meters/{METER}")).text
        assert "rebroadcast" not in html.split('id="history"')[1] and "confirm_support" not in html


async def test_each_kind_is_read_through_an_index_on_the_meter_not_a_scan_of_the_history(
    db: asyncpg.Connection,
) -> None:
    # Sequential scans priced out, PostgreSQL still reads a table with no index on the meter whole (through some
    # other index, or a scan): every read of these tables' partitions must be an index condition on the meter. Over
    # 10 million lookups, reading them whole made a meter page take 25-40 s.
    await db.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + TIMELINE, METER, "bank-a", None, 50))
    tables = ("lookups", "lookup_rounds", "purchase_attempts")  # decisions are on the attempts' rows (0019)
    scans = [n for n in plan.split("->") if re.match(rf"\s*\S.*? on ({'|'.join(tables)})_(p\d+|default) ", n)]
    assert {re.search(r" on (\w+?)_(p\d+|default) ", n).group(1) for n in scans} == set(tables)  # type: ignore[union-attr]
    for node in scans:
        assert re.search(r"Cond: \(+meter_number = ", node), f"not read by the meter:\n{node}"
