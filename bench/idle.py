"""What the system costs with nothing to do: every worker started and idle, its CPU and the broker's, with the
consumers' fetch settings as configured and with Kafka's own defaults (a fetch held up to 500 ms, answered at the
first byte), measured in turn (docs/deployment.md, "How a consumer fetches")."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.env import BenchEnv, start_workers, stop
from bench.process_usage import cpu_seconds, cpu_used
from messaging.fetch_pace import IDLE_MIN_BYTES, IDLE_WAIT_MS

# The fetch an idle consumer goes back to (Kafka's consumer defaults), as the workers' settings for the whole run.
KAFKA_DEFAULTS = {"PPU_FETCH_MAX_WAIT_MS": str(IDLE_WAIT_MS), "PPU_FETCH_MIN_BYTES": str(IDLE_MIN_BYTES)}
SETTLE_S = 15.0  # the workers join their groups (a rebalance waits out the group's initial delay) before counting


async def idle_cpu(env: BenchEnv, seconds: float, **extra: str) -> dict[str, float]:
    """CPU milliseconds per second of the idle workers (summed), of the broker and of the database."""
    procs = start_workers(env, "all", extra=extra)
    try:
        await asyncio.sleep(SETTLE_S)
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited while idle (run it alone to see why)")
        pids = {"workers": procs[0].pid}  # `ppu worker all`: one process
        before = cpu_seconds(pids)
        await asyncio.sleep(seconds)
        used = cpu_used(before, cpu_seconds(pids))
    finally:
        stop(procs)
    return {part: used.get(part, 0.0) * 1000 / seconds for part in ("workers", "kafka", "postgresql")}


async def idle_figures(env: BenchEnv, seconds: float) -> dict[str, Any]:
    """Configured, then Kafka's defaults, then configured again (the two configured runs' mean: a broker whose
    background work drifts during the measurement is seen in the spread between them)."""
    first = await idle_cpu(env, seconds)
    defaults = await idle_cpu(env, seconds, **KAFKA_DEFAULTS)
    again = await idle_cpu(env, seconds)
    r: dict[str, Any] = {"idle_seconds": seconds}
    for part in ("workers", "kafka", "postgresql"):
        configured = (first[part] + again[part]) / 2
        r[f"idle_cpu_ms_per_s_{part}"] = configured
        r[f"idle_cpu_ms_per_s_{part}_runs"] = [first[part], again[part]]
        r[f"idle_cpu_ms_per_s_{part}_kafka_defaults"] = defaults[part]
    return r
