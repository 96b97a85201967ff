"""The console's reads against large databases: a meter page's timeline, meter search."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from functools import partial

import asyncpg

from bench.env import INSTITUTION, BenchEnv
from bench.flows import known_meter
from bench.measure import percentiles
from console.queries import SESSION_SETTINGS, search_meters
from operations.timeline import meter_timeline


async def timeline_latency(env: BenchEnv, meters: int, pages: int = 30) -> dict[str, float]:
    """A meter page's timeline (its first page), ms."""
    return await _console_reads(
        env,
        [partial(meter_timeline, institution_id=INSTITUTION, meter_number=known_meter(meters)) for _ in range(pages)],
    )


async def search_latency(env: BenchEnv, meters: int, queries: int = 300) -> dict[str, float]:
    def query(i: int) -> str:
        n = known_meter(meters)
        return n[: random.randint(4, 9)] if i % 3 else n[3:8]  # mostly prefixes, every third an infix

    return await _console_reads(env, [partial(search_meters, q=query(i)) for i in range(queries)])


async def _console_reads(
    env: BenchEnv, reads: list[Callable[[asyncpg.Connection], Awaitable[object]]]
) -> dict[str, float]:
    """ms per read, one after another, in a session set as the console's pool sets its own."""
    conn = await env.db()
    await conn.execute("; ".join(f"SET {k} = {v}" for k, v in SESSION_SETTINGS.items()))
    timings = []
    try:
        for read in reads:
            started = time.perf_counter()
            await read(conn)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()
    return percentiles(timings)
