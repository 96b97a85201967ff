"""Commands are trusted for nothing they merely name, the shell reports their outcomes, and the console reads
no body past its limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx

from domain.command_proof import sign, verify
from kernel.settings import Settings
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from tests.conftest import run_ppu
from tests.console_server import serving
from tests.harness import System, eventually, running, seed_reference

METER = "0401000900"


def _command(operator: str = "ada", institution: str = "i1") -> ConfirmSupportRequested:
    data = ConfirmSupportRequestedData(meter_number=METER, operator=operator, institution_id=institution)
    return ConfirmSupportRequested.new(data, source="test", correlationid="c")


def test_a_proof_binds_every_field_and_the_key() -> None:
    signed = sign(_command(), "k" * 32)
    assert verify(signed, "k" * 32)
    assert not verify(signed, "x" * 32), "another key"
    for change in ({"operator": "olga"}, {"institution_id": "i2"}, {"meter_number": "0401000901"}):
        forged = signed.model_copy(update={"data": signed.data.model_copy(update=change)})
        assert not verify(forged, "k" * 32), change
    moved = signed.model_copy(update={"id": _command().id})
    assert not verify(moved, "k" * 32), "a proof cannot be moved to another command"
    assert not verify(_command(), "k" * 32), "no proof"


async def _ready(s: System, db: asyncpg.Connection) -> None:
    await s.attempt(METER)
    await eventually(lambda: db.fetchval("SELECT count(*) FROM meters"), what="the meter")


async def test_unsigned_and_forged_commands_are_rejected_with_a_result_and_an_audit_row(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    async with running(settings) as s:
        await _ready(s, db)
        await s.confirm_support(METER, signed=False)
        forged = sign(_command(operator="olga"), "not-the-deployment-key-" * 2)
        await s.send("operator_commands", forged)
        rows = await eventually(lambda: _at_least(db, 2), what="two audit rows")
    assert [r["outcome"] for r in rows] == ["rejected", "rejected"]
    assert all("no valid proof" in r["details"]["reason"] for r in rows)
    assert not await db.fetchval("SELECT count(*) FROM rebroadcast_marks")


async def _at_least(db: asyncpg.Connection, n: int) -> list[asyncpg.Record] | None:
    rows = await db.fetch("SELECT actor, outcome, details FROM audit_log WHERE action = 'confirm_support' ORDER BY 1")
    return rows if len(rows) >= n else None


async def test_the_shell_reports_outcomes_and_refuses_unknown_institutions(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    async with running(settings) as s:
        await _ready(s, db)
        marked = await asyncio.to_thread(
            run_ppu, settings, "send", "confirm-support", METER, "--admin", "ada", "--institution", "i1"
        )
        assert marked.returncode == 0 and marked.stdout.strip().endswith(": marked"), marked.stderr
        again = await asyncio.to_thread(
            run_ppu, settings, "send", "confirm-support", METER, "--admin", "ada", "--institution", "i1"
        )
        assert again.returncode == 0 and again.stdout.strip().endswith(": already marked"), again.stderr
        unknown_meter = await asyncio.to_thread(
            run_ppu, settings, "send", "confirm-support", "0409999999", "--admin", "ada", "--institution", "i1"
        )
        assert unknown_meter.returncode == 1 and "rejected: unknown meter 0409999999" in unknown_meter.stderr
    for args, needle in (
        (["send", "confirm-support", METER, "--admin", "olga", "--institution", "i1"], "olga is not an admin of i1"),
        (["send", "confirm-support", METER, "--admin", "nobody", "--institution", "i1"], "nobody is not an admin"),
        (["send", "confirm-support", METER, "--admin", "ada", "--institution", "nosuch-bank"], "unknown institution"),
        (["send", "purchase-attempt", METER, "--institution", "nosuch-bank"], "unknown institution nosuch-bank"),
        (["meter", "show", METER, "--institution", "nosuch-bank"], "unknown institution nosuch-bank"),
    ):
        done = await asyncio.to_thread(run_ppu, settings, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and needle in lines[0], (args, done.stderr)
    shown = await asyncio.to_thread(run_ppu, settings, "meter", "show", METER, "--institution", "i2")
    assert shown.returncode == 0 and "not marked" in shown.stdout, "i1's mark is not i2's"


async def test_the_console_reads_no_body_past_its_limit(settings: Settings, db: asyncpg.Connection) -> None:
    await seed_reference(db)
    async with serving(settings) as (base, _), httpx.AsyncClient(base_url=base, timeout=30) as c:
        token = (await c.get("/api/v1/session")).json()["csrf_token"]
        big = b'{"institution": "i1", "username": "' + b"a" * (20 * 1024 * 1024) + b'", "password": "x"}'
        declared = await c.post("/api/v1/session", content=big, headers={"X-CSRF-Token": token})
        assert declared.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(200):
                yield b"a" * 4096

        streamed = await c.post("/api/v1/session", content=chunks(), headers={"X-CSRF-Token": token})
        assert streamed.status_code == 413, "no Content-Length: counted as it arrives"
        small = await c.post(
            "/api/v1/session",
            json={"institution": "i1", "username": "ada", "password": "wrong"},
            headers={"X-CSRF-Token": token},
        )
        assert small.status_code == 401, "ordinary bodies still pass"
