"""Steps that `make bench` and the one-figure runs (`ppu bench --only …`) share, and the commit a run measured."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bench import console_reads, flows
from bench.env import BenchEnv, prepare, retire
from bench.history import HISTORY_ROWS, with_history
from bench.process_usage import broker_jit_seconds

FIRST_SEEN_S = 18.0  # at 20 attempts/s: 300 decisions in the steady state, after the warm-up

# bench/in_turn.py's ratios under the names (the rest keep in_turn's).
TURN_NAMES = {
    "10m_history_vs_10k": "lookup_10m_history_vs_empty_ratio",
    "1m_vs_10k": "lookup_1m_vs_10k_ratio",
    "2_workers_vs_10k": "scale_out_2_vs_1_ratio",
    "4_workers_vs_10k": "scale_out_4_vs_1_ratio",
    "1pct_poison_vs_10k": "poison_1pct_vs_clean_ratio",
}


def turn_figures(turns: dict[str, float]) -> dict[str, float]:
    """What bench/in_turn.py measured, its ratios under the issue's names."""
    return {TURN_NAMES.get(k, k): v for k, v in turns.items()}


def first_seen_figures(figures: dict[str, float]) -> dict[str, float]:
    named = {k: "first_seen_decisions_lost" if k == "lost" else f"first_seen_decision_{k}_ms" for k in figures}
    return {named[k]: v for k, v in figures.items()}


def paced_cpu_figures(parts: dict[str, float], rate: float) -> dict[str, Any]:
    """The paced latency run's CPU µs per attempt (bench/latency.lookup_latency's `cpu`), summed and by part."""
    if not parts:
        return {}
    return {
        f"cpu_us_per_attempt_at_{rate:.0f}": sum(parts.values()),
        f"cpu_us_per_attempt_at_{rate:.0f}_by_part": parts,
    }


def paced_broker_figures(broker: dict[str, float], rate: float) -> dict[str, Any]:
    """What the local broker did during the paced latency run (bench/latency.lookup_latency's `broker`): collector
    pauses and JIT compile seconds."""
    return {f"broker_{k}_at_{rate:.0f}": v for k, v in broker.items()}


def floor_cpu_figures(parts: dict[str, float]) -> dict[str, Any]:
    """The floor relay's CPU µs per message (bench/floors.relay_floor_cpu), summed and by part."""
    return {"floor_relay_cpu_us_per_message": sum(parts.values()), "floor_relay_cpu_us_per_message_by_part": parts}


WARM_UP_ROUNDS = 6
SETTLED_JIT_S = 0.3
CPU_TRIES = 3
T = TypeVar("T")


async def until_settled(
    step: Callable[[int], Awaitable[T]],
    jit_seconds: Callable[[], float | None],
    attempts: int,
    tries: int,
    settled: float = SETTLED_JIT_S,
) -> list[tuple[T, float | None]]:
    """Runs `step(0)`, `step(1)`… (`attempts` attempts each) until one during which the broker's JIT compiled for
    under `settled` seconds per 10,000 attempts, or whose compiling cannot be read (no local broker): at most `tries`.
    Each step's result with its compile seconds, the step's end being the next one's start."""
    done: list[tuple[T, float | None]] = []
    before = jit_seconds()
    for i in range(tries):
        result = await step(i)
        after = jit_seconds()
        jit = None if before is None or after is None else after - before
        done.append((result, jit))
        if jit is None or jit < settled * attempts / 10_000:
            break
        before = after
    return done


async def warm_up(tag: str) -> list[float]:
    """Short lookup flows, not measured, until the broker's JIT compiler has settled (a round of 10,000 attempts
    compiles for under SETTLED_JIT_S; at most WARM_UP_ROUNDS rounds): the first flows of a run otherwise pay for the
    broker's and the database's cold start. A broker started shortly before spent 4.2, 2.7 and 1.4 s compiling
    during its first three 20,000-attempt flows (its CPU per attempt 219, 175, 126 µs), 0.2-0.4 s from the sixth on
    (62-80 µs): it would be measured compiling, not serving. Returns each round's compile seconds (one round, and
    an empty list, when no local broker can be read)."""

    async def round_(i: int) -> None:
        env = await with_meters(f"{tag}{i}", 10_000)
        await flows.lookup_flow(env, 10_000, 10_000)
        await retire(env)

    rounds = await until_settled(round_, broker_jit_seconds, 10_000, WARM_UP_ROUNDS)
    return [jit for _, jit in rounds if jit is not None]


async def settled_cpu(
    measure: Callable[[int], Awaitable[dict[str, float]]], jit_seconds: Callable[[], float | None], n: int
) -> dict[str, Any]:
    """`cpu_us_per_attempt` and its parts from a step (`measure(try)`, `n` attempts) during which the broker's JIT
    had settled (`until_settled`), at most CPU_TRIES steps, the last taken whatever it compiled. A warm-up that
    ended unsettled (six rounds, still compiling) was otherwise measured in this step: one run's broker part was
    142 µs per attempt while it compiled 0.79 s, against 26-33 in the two runs after it
    (bench/results/20261207T123854Z.*). Each step set aside is kept in the results, with its compile seconds."""
    *aside, (parts, jit) = await until_settled(measure, jit_seconds, n, CPU_TRIES)
    return {
        "cpu_us_per_attempt_by_part": parts,
        "cpu_us_per_attempt": sum(parts.values()),
        "kafka_jit_s_during_cpu_step": jit,
        "cpu_steps_set_aside_while_compiling": [{"cpu_us_per_attempt_by_part": p, "kafka_jit_s": j} for p, j in aside],
    }


async def cpu_step(tag: str, n: int) -> dict[str, float]:
    """One CPU-per-attempt step (`flows.lookup_cpu`) on a database of its own, dropped after it."""
    env = await with_meters(tag, 10_000)
    parts = await flows.lookup_cpu(env, n, 10_000)
    await retire(env)
    return parts


async def with_meters(tag: str, meters: int) -> BenchEnv:
    env = await prepare(tag)
    await flows.preload_meters(env, meters)
    return env


async def history(tag: str) -> tuple[dict[str, float], BenchEnv]:
    """A database with 10 million attempts of history (and the 10,000 meters), and the meter page's timeline there."""
    hist = await with_history(tag, HISTORY_ROWS)
    page = await console_reads.timeline_latency(hist, 10_000)
    return {f"meter_timeline_{k}_ms_10m_history": v for k, v in page.items()}, hist


def measured_commit() -> str:
    """The commit measured, marked when the working tree differs from it."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
        # Results files written meanwhile (this run's or an earlier one's, not committed yet) change no code.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ":(top)", ":(top,exclude)bench/results"],
            cwd=here,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
