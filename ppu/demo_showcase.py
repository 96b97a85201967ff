"""`ppu run`'s showcase: a few demo meters brought to each state the guide describes before the banner is printed,
so every command the banner prints answers at once. They go through the real flows (purchase attempts, provider
answers, a signed Confirm support), not through SQL written behind the workers' backs.

Demo traffic draws from 0401000010 upwards (`TRAFFIC_FIRST`), so these meters keep their state while it runs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from kernel.connections import connection
from kernel.settings import Settings

TRAFFIC_FIRST = 10  # demo traffic leaves 0401000000-0401000009 to the showcase


@dataclass(frozen=True)
class Showcase:
    meter: str
    institution: str
    shows: str  # what the meter shows once ready
    ready_sql: str  # true once the meter shows it


ALPHA_SUPPORTS = """SELECT EXISTS (SELECT 1 FROM meter_support WHERE meter_number = $1 AND provider_id = 'prov-alpha'
                                     AND status = 'supported')"""
SUPPORTED = Showcase(
    "0401000002",
    "demo-bank",
    "Supported by Alpha Vending (prov-alpha), Not Supported by the others; its purchase routed to prov-alpha",
    f"{ALPHA_SUPPORTS} AND EXISTS (SELECT 1 FROM routing_decisions WHERE meter_number = $1)",
)
BLOCKED = Showcase(
    "0401000001",
    "corner-wallet",
    "blocked and Unassigned: none of corner-wallet's providers supports it",
    "SELECT blocked FROM meters WHERE meter_number = $1",
)
MARKED = Showcase(
    "0401000004",
    "demo-bank",
    "marked for rebroadcast by demo-bank's admin (Confirm support); its next purchase asks every provider again",
    "SELECT EXISTS (SELECT 1 FROM rebroadcast_marks WHERE meter_number = $1)",
)
SHOWCASE = [SUPPORTED, BLOCKED, MARKED]


async def _ppu(*args: str) -> int:
    """`ppu ARGS` as the operator would type it; its output goes to ppu run's own."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ppu.cli", *args, stdout=asyncio.subprocess.DEVNULL
    )
    return await proc.wait()


async def _until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


async def _ready(settings: Settings, sql: str, meter: str, seconds: float) -> bool:
    async with connection(settings) as conn:

        async def shown() -> bool:
            return bool(await conn.fetchval(sql, meter))

        return await _until(shown, seconds)


async def _console_answers(url: str, seconds: float) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:

        async def answers() -> bool:
            try:
                return (await client.get(f"{url}/login")).status_code == 200
            except httpx.TransportError:
                return False

        return await _until(answers, seconds)


async def prepare(settings: Settings, console_url: str, say: Callable[[str], None], seconds: float = 90) -> list[str]:
    """Brings the showcase meters to their states and waits for the console; returns what could not be readied."""
    started = time.monotonic()

    def check(ok: bool, what: str) -> bool:
        say(f"{what:16}{'ready' if ok else 'NOT READY'} after {time.monotonic() - started:.1f} s")
        return ok

    for s in (SUPPORTED, BLOCKED, MARKED):
        await _ppu("send", "purchase-attempt", s.meter, "--institution", s.institution)
    missing = [
        s.meter
        for s in (SUPPORTED, BLOCKED)
        if not check(await _ready(settings, s.ready_sql, s.meter, seconds), s.meter)
    ]
    if await _ready(settings, ALPHA_SUPPORTS, MARKED.meter, seconds):
        # The mark goes through the command flow, signed as the demo admin, as an operator's click would.
        await _ppu("send", "confirm-support", MARKED.meter, "--admin", "admin", "--institution", MARKED.institution)
    if not check(await _ready(settings, MARKED.ready_sql, MARKED.meter, 10), MARKED.meter):
        missing.append(MARKED.meter)
    if not check(await _console_answers(console_url, seconds), "console"):
        missing.append(console_url)
    return missing


def banner(console_url: str) -> list[str]:
    lines = [f"{'console':16}{console_url}/   (log in with a demo login above)"]
    for s in SHOWCASE:
        lines.append(f"{'try':16}.venv/bin/ppu meter show {s.meter} --institution {s.institution}")
        lines.append(f"{'':16}  {s.shows}")
    lines.append(f"{'try':16}.venv/bin/ppu meter history {SUPPORTED.meter} --institution {SUPPORTED.institution}")
    lines.append(f"{'try':16}{console_url}/ppu/meters/{SUPPORTED.meter}")
    return lines
