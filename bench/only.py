"""One figure alone (`ppu bench --only …`): quicker than `make bench` when a change touches one of them."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import flows, latency
from bench.env import broker_partitions, plan_cache_mode, prepare
from bench.floors import relay_floor_cpu
from bench.idle import idle_figures
from bench.in_turn import Variant, in_turn
from bench.profile import profile_lookup, statements_on, statements_top
from bench.steps import (
    FIRST_SEEN_S,
    cpu_step,
    first_seen_figures,
    history,
    measured_commit,
    paced_cpu_figures,
    turn_figures,
    warm_up,
    with_meters,
)


async def _paced_run(tag: str, rate: float, latency_seconds: float) -> dict[str, Any]:
    """What a paced run records of itself (`--only latency` and `--only statements`), after the backlog warm-up."""
    return {
        "commit": measured_commit(),
        "offered_rate_per_s_for_latency": rate,
        "latency_seconds": latency_seconds,
        "db_plan_cache_mode": plan_cache_mode(),
        # Settings compared in turn (docs/deployment.md "How a consumer fetches"), when set for the run.
        **{k.lower(): v for k, v in os.environ.items() if k.startswith(("PPU_FETCH_", "PPU_COMMIT_HINT_"))},
        "broker_partitions_at_start": await broker_partitions(),
        "warm_up_broker_jit_s": await warm_up(f"{tag}w"),
    }


async def latency_only(rate: float, latency_seconds: float) -> dict[str, Any]:
    """`--only latency`: the paced lookup latency alone, e.g. to compare PPU_DB_PLAN_CACHE_MODE values."""
    tag = f"b{int(time.time())}"
    r = await _paced_run(tag, rate, latency_seconds)
    paced, _ = await latency.paced_lookup(tag, rate, latency_seconds)
    return r | paced


async def statements_only(rate: float, latency_seconds: float) -> dict[str, Any]:
    """`--only statements`: the paced lookup flow with pg_stat_statements counting (planning too), for what each
    statement costs the database per attempt at a steady rate, where a batch holds a few attempts: e.g. to compare
    PPU_DB_PLAN_CACHE_MODE values. A paced flow on the same environment first, not counted: its sessions plan there."""
    tag = f"b{int(time.time())}"
    r = await _paced_run(tag, rate, latency_seconds)
    env = await with_meters(f"{tag}t", 10_000)
    await latency.lookup_latency(env, rate, latency.PACED_WARM_UP_S, 10_000)
    unavailable = await statements_on(env)
    cpu: dict[str, float] = {}
    lat = await latency.lookup_latency(env, rate, latency_seconds, 10_000, again=True, cpu=cpu)
    r.update({f"lookup_{k}_ms_at_{rate:.0f}": v for k, v in lat.items()} | paced_cpu_figures(cpu, rate))
    top = unavailable or await statements_top(env, int(rate * latency_seconds))
    r["text"] = f"pg_stat_statements over {latency_seconds:.0f} s at {rate:.0f} attempts/s (top by total time)\n\n{top}"
    return r


async def cold_start_only(rate: float, latency_seconds: float) -> dict[str, Any]:
    """`--only cold-start`: where the first second's latency comes from. The paced lookup latency on a new database
    and new topics (an install's first traffic), then on the same ones with the workers started again (a restart,
    a deploy): each run's first second and its stages apart."""
    r: dict[str, Any] = {"commit": measured_commit(), "offered_rate_per_s_for_latency": rate}
    env = await with_meters(f"b{int(time.time())}k", 10_000)
    for name, again in (("new", False), ("restarted", True)):
        lat = await latency.lookup_latency(env, rate, latency_seconds, 10_000, again=again)
        r.update({f"{name}_{k}_ms_at_{rate:.0f}": v for k, v in lat.items() if "cold" in k or k == "p99"})
    return r


async def first_seen_only() -> dict[str, Any]:
    """`--only first-seen`: purchase decisions on new meters with one silent provider of five."""
    env = await prepare(f"b{int(time.time())}d")
    figures = await latency.first_seen_decisions(env, 20, FIRST_SEEN_S)
    return {"commit": measured_commit(), **first_seen_figures(figures)}


async def profile_only(messages: int, raws: Path) -> dict[str, Any]:
    """`--only profile`: py-spy over the lookup worker and the relay, pg_stat_statements over the database."""
    tag = f"b{int(time.time())}"
    await warm_up(f"{tag}w")  # the broker's JIT settled first: its CPU is counted
    return await profile_lookup(await prepare(f"{tag}q"), messages, raws)


async def history_only(n: int) -> dict[str, Any]:
    """`--only history`: the lookup flow over 10 million attempts of history, against an empty database."""
    tag = f"b{int(time.time())}"
    empty = await with_meters(f"{tag}s", 10_000)
    r: dict[str, Any] = {"commit": measured_commit(), "messages": n}
    await warm_up(f"{tag}w")
    page, hist = await history(f"{tag}h")
    r.update(page)
    return r | await _in_turn_with_statements(
        Variant(empty, 10_000), "10m_history", Variant(hist, 10_000), "10 million attempts of history", n
    )


async def meters_only(n: int) -> dict[str, Any]:
    """`--only meters`: the lookup flow over a million known meters, against ten thousand."""
    tag = f"b{int(time.time())}"
    few, many = await with_meters(f"{tag}s", 10_000), await with_meters(f"{tag}m", 1_000_000)
    r: dict[str, Any] = {"commit": measured_commit(), "messages": n}
    await warm_up(f"{tag}w")
    return r | await _in_turn_with_statements(
        Variant(few, 10_000), "1m", Variant(many, 1_000_000), "a million meters", n
    )


async def _in_turn_with_statements(base: Variant, name: str, variant: Variant, title: str, n: int) -> dict[str, Any]:
    """The variant against the base in turn (bench/in_turn.py), with each database's statements counted over the
    turns (the variant's cost per statement, per attempt) as `text`, written beside the results as a profile."""
    unavailable = await statements_on(base.env) or await statements_on(variant.env)
    turns, _ = await in_turn(base, {name: variant}, n)
    tops = [
        f"## {heading}\n\n{unavailable or await statements_top(v.env, 3 * n)}"
        for heading, v in (("10,000 meters, empty", base), (title, variant))
    ]
    text = "pg_stat_statements over the three turns, per database (top by total time)\n\n" + "\n".join(tops)
    return {**turn_figures(turns), "text": text}


async def scale_out_only(n: int, pairs: int = 3) -> dict[str, Any]:
    """`--only scale-out`: the lookup flow with one lookup worker and relay, then with two of each, `pairs` times in
    turn after a warm-up; the ratio is the median of each pair's (the machine drifts less within a pair)."""
    tag = f"b{int(time.time())}"
    await warm_up(f"{tag}w")
    r: dict[str, Any] = {"commit": measured_commit(), "messages": n}
    ratios = []
    for i in range(1, pairs + 1):
        one, _ = await flows.lookup_flow(await with_meters(f"{tag}o{i}", 10_000), n, 10_000)
        two, _ = await flows.lookup_flow(await with_meters(f"{tag}t{i}", 10_000), n, 10_000, workers=2, relays=2)
        r[f"lookup_flow_pair{i}_1_worker_per_s"], r[f"lookup_flow_pair{i}_2_workers_per_s"] = one, two
        ratios.append(two / one)
    r["scale_out_2_vs_1_ratio"] = statistics.median(ratios)
    return r


async def poison_only(n: int) -> dict[str, Any]:
    """`--only poison`: the lookup flow with 1% poison messages against the clean one, in turn after a warm-up."""
    tag = f"b{int(time.time())}"
    await warm_up(f"{tag}w")
    clean, poisoned = await with_meters(f"{tag}s", 10_000), await with_meters(f"{tag}x", 10_000)
    turns, _ = await in_turn(Variant(clean, 10_000), {"1pct_poison": Variant(poisoned, 10_000, poison_every=100)}, n)
    return {"commit": measured_commit(), "messages": n, **turn_figures(turns)}


async def cpu_only(n: int, pairs: int = 3) -> dict[str, Any]:
    """`--only cpu`: the floor relay's CPU per message and the lookup flow's per attempt (as `make bench` measures
    them), `pairs` times in turn after a warm-up; each figure is the median of its runs, every run kept."""
    tag = f"b{int(time.time())}"
    await warm_up(f"{tag}w")
    floor_env = await prepare(f"{tag}f")
    floors_, flows_ = [], []
    for i in range(1, pairs + 1):
        floors_.append(await relay_floor_cpu(floor_env, n))
        flows_.append(await cpu_step(f"{tag}c{i}", n))
    floor = statistics.median(sum(f.values()) for f in floors_)
    flow = statistics.median(sum(f.values()) for f in flows_)
    return {
        "commit": measured_commit(),
        "messages": n,
        "floor_relay_cpu_us_per_message": floor,
        "cpu_us_per_attempt": flow,
        "cpu_per_attempt_vs_floor_relay_message": flow / floor,
        "floor_relay_cpu_runs": floors_,
        "cpu_us_per_attempt_runs": flows_,
    }


async def idle_only(seconds: float) -> dict[str, Any]:
    """`--only idle`: every worker idle, with the fetch settings as configured and with Kafka's defaults."""
    env = await prepare(f"b{int(time.time())}i")  # idle workers read no meter: none preloaded
    return {"commit": measured_commit(), **await idle_figures(env, seconds)}
