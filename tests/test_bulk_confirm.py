"""Bulk Confirm support through the console's API, its page (a CSV upload) and the CLI, against the real command
consumer: per-meter results, the single button's rules, audit and tenancy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from kernel.settings import Settings
from operations.bulk_confirm import MAX_METERS
from tests.conftest import run_ppu
from tests.console_server import login, serving
from tests.harness import running, seed_reference

FRESH, MARKED, OTHERS, UNKNOWN = "0401000501", "0401000502", "0401000503", "0401000599"


async def marks(db: asyncpg.Connection) -> set[tuple[str, str]]:
    return {(r["meter_number"], r["institution_id"]) for r in await db.fetch("SELECT * FROM rebroadcast_marks")}


async def test_bulk_confirm_support_per_meter(settings: Settings, topics: list[str], db: asyncpg.Connection) -> None:
    await seed_reference(db)
    await db.executemany("INSERT INTO meters (meter_number) VALUES ($1)", [(m,) for m in (FRESH, MARKED, OTHERS)])
    await db.execute(
        "INSERT INTO rebroadcast_marks VALUES ($1, 'i1', 'olga', now()), ($2, 'i2', 'wes', now())", MARKED, OTHERS
    )
    listed = [FRESH, MARKED, OTHERS, UNKNOWN, "not-a-meter!", FRESH]
    async with running(settings), serving(settings) as (base, _):
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            token = (await login(c, "vic")).json()["csrf_token"]
            r = await c.post(
                "/api/v1/confirm-support/bulk", headers={"X-CSRF-Token": token}, json={"meter_numbers": [FRESH]}
            )
            assert r.status_code == 403, "a viewer may not confirm support, in bulk or not"
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            token = (await login(c, "olga")).json()["csrf_token"]
            r = await c.post(
                "/api/v1/confirm-support/bulk", headers={"X-CSRF-Token": token}, json={"meter_numbers": listed}
            )
            assert r.status_code == 200, r.text
            got = {x["meter_number"]: x["outcome"] for x in r.json()}
            assert got == {
                FRESH: "marked",
                MARKED: "already marked",
                OTHERS: "marked",  # i2's mark is i2's: i1 marks it for itself
                UNKNOWN: "unknown",
                "not-a-meter!": "invalid",
            }
            assert len(r.json()) == 5, "a repeated number is sent once"
            too_many = [f"05{i:08d}" for i in range(MAX_METERS + 1)]
            r = await c.post(
                "/api/v1/confirm-support/bulk", headers={"X-CSRF-Token": token}, json={"meter_numbers": too_many}
            )
            assert r.status_code == 422
            # The page: a CSV upload, its header row reported as not a meter number.
            r = await c.post(
                "/ppu/bulk-confirm",
                data={"csrf_token": token, "meters": ""},
                files={
                    "file": ("meters.csv", b"meter_number,note\r\n0401000599,gone\r\n0401000501,again\r\n", "text/csv")
                },
            )
            assert r.status_code == 200
            row = r.text.split('data-meter="0401000501">', 1)[1].split("</tr>", 1)[0]
            assert '<td class="outcome">already marked</td>' in row, row
            assert 'data-meter="meter_number"' in r.text and "1 already marked, 1 unknown, 1 invalid" in r.text
        assert await marks(db) == {(MARKED, "i1"), (OTHERS, "i2"), (FRESH, "i1"), (OTHERS, "i1")}
        sent = await db.fetch(
            """SELECT target, details->>'via' AS via FROM audit_log
               WHERE action = 'confirm_support_requested' ORDER BY target"""
        )
        assert [(s["target"], s["via"]) for s in sent] == [
            (FRESH, "console"),
            (FRESH, "console"),
            (MARKED, "console"),
            (OTHERS, "console"),
        ]
        bulk = await db.fetch(
            "SELECT institution_id, details FROM audit_log WHERE action = 'bulk_confirm_support' ORDER BY audit_id"
        )
        assert [b["institution_id"] for b in bulk] == ["i1", "i1"]

        # The CLI, signed as a named admin of i2: only i2's marks change.
        listing = Path(settings.state_dir) / "meters.txt"
        listing.write_text(f"{FRESH}\n{OTHERS}\n")
        done = await asyncio.to_thread(
            run_ppu, settings, "send", "confirm-support-bulk", str(listing), "--admin", "zed", "--institution", "i2"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "1 marked, 1 already marked", done.stdout
        done = await asyncio.to_thread(
            run_ppu, settings, "send", "confirm-support-bulk", str(listing), "--admin", "wes", "--institution", "i2"
        )
        assert done.returncode == 1 and "wes is not an admin of i2" in done.stderr
    assert await marks(db) == {(MARKED, "i1"), (OTHERS, "i2"), (FRESH, "i1"), (OTHERS, "i1"), (FRESH, "i2")}
