"""`ppu bench` / `make bench`: every figure in one run, on one broker and one database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from bench import console_reads, flows, latency, response_flows
from bench.env import broker_partitions, drop_previous_runs, plan_cache_mode, prepare, retire
from bench.floors import faust_peer, faust_version, relay_floor, relay_floor_cpu, upsert_floor
from bench.in_turn import Variant, in_turn
from bench.only import (
    cold_start_only,
    cpu_only,
    first_seen_only,
    history_only,
    idle_only,
    latency_only,
    meters_only,
    poison_only,
    profile_only,
    scale_out_only,
    statements_only,
)
from bench.process_usage import broker_jit_seconds
from bench.report import markdown, write
from bench.steps import (
    FIRST_SEEN_S,
    cpu_step,
    first_seen_figures,
    floor_cpu_figures,
    history,
    measured_commit,
    settled_cpu,
    turn_figures,
    warm_up,
    with_meters,
)

RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = Path(__file__).resolve().parent / "profiles"


async def run_all(n: int, soak_seconds: float, rate: float, latency_seconds: float) -> dict[str, Any]:
    tag = f"b{int(time.time())}"
    r: dict[str, Any] = {
        "commit": measured_commit(),
        "messages": n,
        "soak_seconds": soak_seconds,
        "offered_rate_per_s_for_latency": rate,
        "latency_seconds": latency_seconds,
        "db_plan_cache_mode": plan_cache_mode(),
        "broker_partitions_at_start": await broker_partitions(),
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

    step("warm-up: lookup flows until the broker's JIT has settled, not measured")
    r["warm_up_broker_jit_s"] = await warm_up(f"{tag}w")

    step("lookup flow, 10 thousand meters")
    small = await prepare(f"{tag}s")
    await flows.preload_meters(small, 10_000)
    cores: dict[str, float] = {}
    r["lookup_flow_10k_per_s"], mem_lookup = await flows.lookup_flow(small, n, 10_000, cores=cores)
    r["lookup_flow_cpu_cores"] = cores  # what limits the flow on this 2-core machine
    step("10 million attempts of history (its template is built once, in minutes): the meter page there")
    page, hist = await history(f"{tag}h")
    r.update(page)
    step("CPU per message of the floor relay, then per attempt of every process of the lookup flow")
    r.update(floor_cpu_figures(await relay_floor_cpu(floor_env, n)))
    await retire(floor_env)

    async def measure_cpu(i: int) -> dict[str, float]:
        return await cpu_step(f"{tag}c{i}", n)

    r.update(await settled_cpu(measure_cpu, broker_jit_seconds, n))
    r["cpu_per_attempt_vs_floor_relay_message"] = r["cpu_us_per_attempt"] / r["floor_relay_cpu_us_per_message"]
    step("response flow")
    r["response_flow_per_s"], mem_resp = await response_flows.response_flow(small, n, 10_000)
    await retire(small)  # read no more; its autovacuum would otherwise run during the paced latency next
    step(f"latency at {rate:.0f} per second, after paced flows until the broker's JIT has settled, not measured")
    paced, timed = await latency.paced_lookup(tag, rate, latency_seconds)
    r.update(paced)
    lat = await response_flows.response_latency(timed, rate, latency_seconds, 10_000)
    r.update({f"response_{k}_ms_at_{rate:.0f}": v for k, v in lat.items()})

    step("first-seen decisions with one silent provider of five")
    first = await prepare(f"{tag}d")
    r.update(first_seen_figures(await latency.first_seen_decisions(first, 20, FIRST_SEEN_S)))

    step("1 million meters (preloading 1M meters and 5M support rows): console search there")
    big = await prepare(f"{tag}m")
    await flows.preload_meters(big, 1_000_000)
    r.update({f"search_{k}_ms_1m": v for k, v in (await console_reads.search_latency(big, 1_000_000)).items()})
    # Databases of their own: the one the flows above used holds the response flow's answers, Not Supported among
    # them, and attempts there are blocked without the routine request the flow counts.
    empty, pair, four, poisoned = [await with_meters(f"{tag}{x}", 10_000) for x in "epqx"]
    step("in turn, three times: the lookup flow over 10k meters, 10M history, 1M meters, 2 and 4 workers and relays,")
    step("  1% poison messages among the attempts")
    variants = {
        "10m_history": Variant(hist, 10_000),
        "1m": Variant(big, 1_000_000),
        "2_workers": Variant(pair, 10_000, workers=2),
        "4_workers": Variant(four, 10_000, workers=4),
        "1pct_poison": Variant(poisoned, 10_000, poison_every=100),
    }
    turns, mem_turns = await in_turn(Variant(empty, 10_000), variants, n)
    r.update(turn_figures(turns))

    step(f"soak: every worker for {soak_seconds:.0f} s")
    soak_env = await prepare(f"{tag}k")
    await flows.preload_meters(soak_env, 10_000)
    mem_soak = await flows.soak(soak_env, 200, soak_seconds, 10_000)

    r["lookup_flow_ratio_to_floor"] = r["lookup_flow_10k_per_s"] / r["relay_floor_per_s"]
    r["response_flow_ratio_to_floor"] = r["response_flow_per_s"] / min(r["relay_floor_per_s"], r["upsert_floor_per_s"])
    r["lookup_flow_ratio_to_faust"] = r["lookup_flow_10k_per_s"] / r["faust_relay_per_s"]
    r["worker_rss_mb_peak"] = max(m.peak() for m in (mem_lookup, mem_resp, mem_soak, *mem_turns))
    r["soak_rss_growth_mb"] = mem_soak.growth()
    r["soak_rss_mb_peak"] = mem_soak.peak()
    return r


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
    type=click.Choice(
        [
            "latency",
            "statements",
            "cold-start",
            "first-seen",
            "profile",
            "history",
            "meters",
            "scale-out",
            "poison",
            "idle",
            "cpu",
        ]
    ),
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
    elif only == "cold-start":
        results = asyncio.run(cold_start_only(rate, latency_seconds))
    elif only == "history":
        results = asyncio.run(history_only(messages))
        _statements_beside(results, "over history", stamp)
    elif only == "meters":
        results = asyncio.run(meters_only(messages))
        _statements_beside(results, "over a million meters", stamp)
    elif only == "statements":
        results = asyncio.run(statements_only(rate, latency_seconds))
        _statements_beside(results, f"at a paced {rate:.0f}/s", stamp)
    elif only == "first-seen":
        results = asyncio.run(first_seen_only())
    elif only == "scale-out":
        results = asyncio.run(scale_out_only(messages))
    elif only == "poison":
        results = asyncio.run(poison_only(messages))
    elif only == "cpu":
        results = asyncio.run(cpu_only(messages))
    elif only == "idle":
        results = asyncio.run(idle_only(latency_seconds))
    else:
        results = asyncio.run(run_all(messages, soak_seconds, rate, latency_seconds))
    for path in write(results, RESULTS, stamp):
        click.echo(f"wrote {path}")
    click.echo(markdown(results))


def _statements_beside(results: dict[str, Any], what: str, stamp: str) -> None:
    """A run's pg_stat_statements top (its `text`), written to bench/profiles/<stamp>.md rather than the results."""
    PROFILES.mkdir(exist_ok=True)
    heading = f"# Lookup flow {what}, statements\n\nCommit measured: `{results['commit']}`\n\n"
    (PROFILES / f"{stamp}.md").write_text(heading + results.pop("text"))
    click.echo(f"wrote {PROFILES / f'{stamp}.md'}")
