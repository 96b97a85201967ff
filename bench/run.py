"""`ppu bench` / `make bench`: every figure in one run, on one broker and one database."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import click

from bench import flows
from bench.env import BenchEnv, drop_previous_runs, prepare
from bench.floors import faust_peer, faust_version, relay_floor, upsert_floor
from bench.history import HISTORY_ROWS, with_history
from bench.in_turn import Variant, in_turn
from bench.profile import profile_lookup
from bench.report import markdown, write

RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = Path(__file__).resolve().parent / "profiles"


async def latency_only(rate: float, latency_seconds: float) -> dict[str, Any]:
    """`--only latency`: the paced lookup latency alone, e.g. to compare PPU_DB_PLAN_CACHE_MODE values."""
    r: dict[str, Any] = {
        "commit": measured_commit(),
        "offered_rate_per_s_for_latency": rate,
        "latency_seconds": latency_seconds,
        "db_plan_cache_mode": os.environ.get("PPU_DB_PLAN_CACHE_MODE", "force_custom_plan"),
    }
    timed = await prepare(f"b{int(time.time())}l")
    await flows.preload_meters(timed, 10_000)
    lat = await flows.lookup_latency(timed, rate, latency_seconds, 10_000)
    r.update({f"lookup_{k}_ms_at_{rate:.0f}": v for k, v in lat.items()})
    return r


FIRST_SEEN_S = 18.0  # at 20 attempts/s: 300 decisions in the steady state, after the warm-up


def _first_seen(figures: dict[str, float]) -> dict[str, float]:
    named = {k: "first_seen_decisions_lost" if k == "lost" else f"first_seen_decision_{k}_ms" for k in figures}
    return {named[k]: v for k, v in figures.items()}


async def first_seen_only() -> dict[str, Any]:
    """`--only first-seen`: purchase decisions on new meters with one silent provider of five."""
    env = await prepare(f"b{int(time.time())}d")
    return {"commit": measured_commit(), **_first_seen(await flows.first_seen_decisions(env, 20, FIRST_SEEN_S))}


async def profile_only(messages: int, raws: Path) -> dict[str, Any]:
    """`--only profile`: py-spy over the lookup worker and the relay, pg_stat_statements over the database."""
    env = await prepare(f"b{int(time.time())}q")
    return await profile_lookup(env, messages, raws)


async def history_only(n: int) -> dict[str, Any]:
    """`--only history`: the lookup flow over 10 million attempts of history, against an empty database."""
    tag = f"b{int(time.time())}"
    empty = await _with_meters(f"{tag}s", 10_000)
    r: dict[str, Any] = {"commit": measured_commit(), "messages": n}
    await _warm_up(f"{tag}w")
    page, hist = await _history(f"{tag}h")
    r.update(page)
    turns, _ = await in_turn(Variant(empty, 10_000), {"10m_history": Variant(hist, 10_000)}, n)
    r.update(_turn_figures(turns))
    return r


async def scale_out_only(n: int, pairs: int = 3) -> dict[str, Any]:
    """`--only scale-out`: the lookup flow with one lookup worker and relay, then with two of each, `pairs` times in
    turn after a warm-up; the ratio is the median of each pair's (the machine drifts less within a pair)."""
    tag = f"b{int(time.time())}"
    await _warm_up(f"{tag}w")
    r: dict[str, Any] = {"commit": measured_commit(), "messages": n}
    ratios = []
    for i in range(1, pairs + 1):
        one, _ = await flows.lookup_flow(await _with_meters(f"{tag}o{i}", 10_000), n, 10_000)
        two, _ = await flows.lookup_flow(await _with_meters(f"{tag}t{i}", 10_000), n, 10_000, workers=2, relays=2)
        r[f"lookup_flow_pair{i}_1_worker_per_s"], r[f"lookup_flow_pair{i}_2_workers_per_s"] = one, two
        ratios.append(two / one)
    r["scale_out_2_vs_1_ratio"] = statistics.median(ratios)
    return r


async def _history(tag: str) -> tuple[dict[str, float], BenchEnv]:
    """A database with 10 million attempts of history (and the 10,000 meters), and the meter page's timeline there."""
    hist = await with_history(tag, HISTORY_ROWS)
    page = await flows.timeline_latency(hist, 10_000)
    return {f"meter_timeline_{k}_ms_10m_history": v for k, v in page.items()}, hist


def _turn_figures(turns: dict[str, float]) -> dict[str, float]:
    """What bench/in_turn.py measured, its ratios under the issue's names."""
    names = {
        "10m_history_vs_10k": "lookup_10m_history_vs_empty_ratio",
        "1m_vs_10k": "lookup_1m_vs_10k_ratio",
        "2_workers_vs_10k": "scale_out_2_vs_1_ratio",
        "4_workers_vs_10k": "scale_out_4_vs_1_ratio",
    }
    return {names.get(k, k): v for k, v in turns.items()}


async def run_all(n: int, soak_seconds: float, rate: float, latency_seconds: float) -> dict[str, Any]:
    tag = f"b{int(time.time())}"
    r: dict[str, Any] = {
        "commit": measured_commit(),
        "messages": n,
        "soak_seconds": soak_seconds,
        "offered_rate_per_s_for_latency": rate,
        "latency_seconds": latency_seconds,
    }

    def step(label: str) -> None:
        click.echo(f"• {label}", err=True)

    step("floor: plain aiokafka relay and plain asyncpg batched upsert")
    floor_env = await prepare(f"{tag}f")
    r["relay_floor_per_s"] = await relay_floor(floor_env, n)
    r["upsert_floor_per_s"] = await upsert_floor(floor_env, n)
    step("peer: faust-streaming agent relay")
    r["faust_relay_per_s"] = await faust_peer(floor_env, n)
    r["faust_streaming_version"] = faust_version()

    step("warm-up: a short lookup flow, not measured")
    await _warm_up(f"{tag}w")

    step("lookup flow, 10 thousand meters")
    small = await prepare(f"{tag}s")
    await flows.preload_meters(small, 10_000)
    cores: dict[str, float] = {}
    r["lookup_flow_10k_per_s"], mem_lookup = await flows.lookup_flow(small, n, 10_000, cores=cores)
    r["lookup_flow_cpu_cores"] = cores  # what limits the flow on this 2-core machine
    step("10 million attempts of history (its template is built once, in minutes): the meter page there")
    page, hist = await _history(f"{tag}h")
    r.update(page)
    step("CPU per attempt, every process of the lookup flow")
    parts = await flows.lookup_cpu(await _with_meters(f"{tag}c", 10_000), n, 10_000)
    r["cpu_us_per_attempt_by_part"] = parts
    r["cpu_us_per_attempt"] = sum(parts.values())
    step("lookup flow, 10 thousand meters, 1% poison messages")
    poisoned = await prepare(f"{tag}x")
    await flows.preload_meters(poisoned, 10_000)
    r["lookup_flow_1pct_poison_per_s"], _ = await flows.lookup_flow(poisoned, n, 10_000, poison_every=100)
    step("response flow")
    r["response_flow_per_s"], mem_resp = await flows.response_flow(small, n, 10_000)
    step(f"latency at {rate:.0f} per second")
    timed = await prepare(f"{tag}l")  # fresh topics: the reader counts from their start
    await flows.preload_meters(timed, 10_000)
    lat = await flows.lookup_latency(timed, rate, latency_seconds, 10_000)
    r.update({f"lookup_{k}_ms_at_{rate:.0f}": v for k, v in lat.items()})
    lat = await flows.response_latency(timed, rate, latency_seconds, 10_000)
    r.update({f"response_{k}_ms_at_{rate:.0f}": v for k, v in lat.items()})

    step("first-seen decisions with one silent provider of five")
    first = await prepare(f"{tag}d")
    r.update(_first_seen(await flows.first_seen_decisions(first, 20, FIRST_SEEN_S)))

    step("1 million meters (preloading 1M meters and 5M support rows): console search there")
    big = await prepare(f"{tag}m")
    await flows.preload_meters(big, 1_000_000)
    r.update({f"search_{k}_ms_1m": v for k, v in (await flows.search_latency(big, 1_000_000)).items()})
    # Databases of their own: the one the flows above used holds the response flow's answers, Not Supported among
    # them, and attempts there are blocked without the routine request the flow counts.
    empty, pair, four = [await _with_meters(f"{tag}{x}", 10_000) for x in "epq"]
    step("in turn, three times: the lookup flow over 10k meters, 10M history, 1M meters, 2 and 4 workers and relays")
    variants = {
        "10m_history": Variant(hist, 10_000),
        "1m": Variant(big, 1_000_000),
        "2_workers": Variant(pair, 10_000, workers=2),
        "4_workers": Variant(four, 10_000, workers=4),
    }
    turns, mem_turns = await in_turn(Variant(empty, 10_000), variants, n)
    r.update(_turn_figures(turns))

    step(f"soak: every worker for {soak_seconds:.0f} s")
    soak_env = await prepare(f"{tag}k")
    await flows.preload_meters(soak_env, 10_000)
    mem_soak = await flows.soak(soak_env, 200, soak_seconds, 10_000)

    r["lookup_flow_ratio_to_floor"] = r["lookup_flow_10k_per_s"] / r["relay_floor_per_s"]
    r["response_flow_ratio_to_floor"] = r["response_flow_per_s"] / min(r["relay_floor_per_s"], r["upsert_floor_per_s"])
    r["lookup_flow_ratio_to_faust"] = r["lookup_flow_10k_per_s"] / r["faust_relay_per_s"]
    r["poison_1pct_vs_clean_ratio"] = r["lookup_flow_1pct_poison_per_s"] / r["lookup_flow_10k_per_s"]
    r["worker_rss_mb_peak"] = max(m.peak() for m in (mem_lookup, mem_resp, mem_soak, *mem_turns))
    r["soak_rss_growth_mb"] = mem_soak.growth()
    r["soak_rss_mb_peak"] = mem_soak.peak()
    return r


async def _warm_up(tag: str) -> None:
    """A short lookup flow, not measured: the first flow of a run otherwise pays for the broker's and the database's
    cold start."""
    await flows.lookup_flow(await _with_meters(tag, 10_000), 3000, 10_000)


async def _with_meters(tag: str, meters: int) -> BenchEnv:
    env = await prepare(tag)
    await flows.preload_meters(env, meters)
    return env


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


@click.command()
@click.option("--messages", type=click.IntRange(1000, 10_000_000), default=20_000, show_default=True)
@click.option(
    "--soak-seconds", type=click.FloatRange(10, 7200), default=60, show_default=True, help="`make soak` runs 600"
)
@click.option(
    "--rate",
    type=click.FloatRange(1, 100_000),
    default=1000,
    show_default=True,
    help="offered load for the latency figures",
)
@click.option("--latency-seconds", type=click.FloatRange(1, 600), default=30, show_default=True)
@click.option(
    "--only",
    type=click.Choice(["latency", "first-seen", "profile", "history", "scale-out"]),
    default=None,
    help="one figure alone",
)
def bench(messages: int, soak_seconds: float, rate: float, latency_seconds: float, only: str | None) -> None:
    """Measure throughput, latency, memory, search and scale-out; write bench/results/<timestamp>.*"""
    import asyncio

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + (f"-{only}" if only else "")
    asyncio.run(drop_previous_runs())
    if only == "profile":
        raws = RESULTS.parent.parent / ".local" / "profiles" / stamp
        raws.mkdir(parents=True, exist_ok=True)
        found = asyncio.run(profile_only(messages, raws))
        PROFILES.mkdir(exist_ok=True)
        heading = f"# Lookup flow profile\n\nCommit measured: `{measured_commit()}`\n\n"
        (PROFILES / f"{stamp}.md").write_text(heading + found["text"])
        click.echo(f"wrote {PROFILES / f'{stamp}.md'} (raw stacks in {raws})")
        return
    elif only == "latency":
        results = asyncio.run(latency_only(rate, latency_seconds))
    elif only == "history":
        results = asyncio.run(history_only(messages))
    elif only == "first-seen":
        results = asyncio.run(first_seen_only())
    elif only == "scale-out":
        results = asyncio.run(scale_out_only(messages))
    else:
        results = asyncio.run(run_all(messages, soak_seconds, rate, latency_seconds))
    for path in write(results, RESULTS, stamp):
        click.echo(f"wrote {path}")
    click.echo(markdown(results))
