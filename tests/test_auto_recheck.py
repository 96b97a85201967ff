"""The opt-in automatic re-check, run by the real sweeper: off by default; once an institution turns it on, meters
whose providers stay silent past its age are marked for it alone, within its hourly limit, as the system's action,
audited and shown as such on the meter page and in its history."""

from __future__ import annotations

import asyncio

import asyncpg

from kernel.settings import Settings
from operations.tenancy import Tenant
from tests.conftest import run_ppu
from tests.harness import PROVIDERS, eventually, running, seed_reference

SILENT = ["0401000801", "0401000802", "0401000803"]


async def marks(db: asyncpg.Connection) -> list[tuple[str, str, str]]:
    rows = await db.fetch("SELECT meter_number, institution_id, marked_by FROM rebroadcast_marks ORDER BY 1, 2")
    return [(r[0], r[1], r[2]) for r in rows]


async def test_silent_providers_are_rechecked_for_the_institution_that_asked(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    async with running(settings.model_copy(update={"auto_recheck_every_seconds": 0.3})) as system:
        for meter in SILENT:
            await system.attempt(meter)
            asked = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
            await system.respond(asked["p1"], "supported")  # p2 and p3 stay silent
        await eventually(
            lambda: db.fetchval("SELECT count(*) = 3 FROM routing_decisions"), what="the purchases decided"
        )
        # Silent for two hours, as far as the lookups' send times tell.
        await db.execute(
            """UPDATE meter_support SET last_lookup_sent_at = last_lookup_sent_at - interval '2 hours'
               WHERE meter_number = ANY($1)""",
            SILENT[:2],
        )
        await asyncio.sleep(1.5)  # several sweeps, at 0.3 s (the same sweeper marks below, once opted in)
        assert await marks(db) == [], "off by default"

        done = await asyncio.to_thread(
            run_ppu, settings, "institutions", "auto-recheck", "i1", "--after-minutes", "60", "--max-per-hour", "1"
        )
        assert done.returncode == 0, done.stderr
        await eventually(lambda: marks(db), what="the automatic mark")
        await asyncio.sleep(1.5)  # more sweeps: the hourly limit of 1 holds
        marked = await marks(db)
        assert len(marked) == 1 and marked[0][0] in SILENT[:2], marked
        assert marked[0][1:] == ("i1", "system (auto re-check)"), "i1's alone; i2 did not opt in"
        audit = await db.fetch("SELECT actor, institution_id, target FROM audit_log WHERE action = 'auto_recheck'")
        assert [tuple(a) for a in audit] == [("system", "i1", marked[0][0])]

        view = await Tenant("i1").meter(db, marked[0][0])
        assert view is not None and view.marked_for_rebroadcast and view.marked_by == "system (auto re-check)"
        history = await Tenant("i1").timeline(db, marked[0][0]) or []
        assert any(e.kind == "command" and e.what == "auto_recheck: marked" and e.who == "system" for e in history)
        other = await Tenant("i2").meter(db, marked[0][0])
        assert other is not None and not other.marked_for_rebroadcast

        # A higher limit lets the other due meter through; the recent one (SILENT[2]) is not due.
        done = await asyncio.to_thread(
            run_ppu, settings, "institutions", "auto-recheck", "i1", "--after-minutes", "60", "--max-per-hour", "5"
        )
        assert done.returncode == 0, done.stderr
        await eventually(lambda: db.fetchval("SELECT count(*) = 2 FROM rebroadcast_marks"), what="the second mark")
        assert {m for m, _, _ in await marks(db)} == set(SILENT[:2])

        done = await asyncio.to_thread(run_ppu, settings, "institutions", "auto-recheck", "i1", "--off")
        assert done.returncode == 0 and await db.fetchval("SELECT count(*) FROM auto_recheck") == 0
        bad = await asyncio.to_thread(run_ppu, settings, "institutions", "auto-recheck", "i1")
        assert bad.returncode != 0 and "--after-minutes N or --off" in bad.stderr
