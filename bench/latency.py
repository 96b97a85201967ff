"""Latency at a paced rate: attempt sent → lookup request readable (by stage too), and first-seen purchase decisions
with one silent provider of five. Measured after a warm-up, the first second reported apart."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from bench.env import PROVIDERS, BenchEnv, retire, start_workers, stop
from bench.flows import known_meter, paced_attempts, request_topics
from bench.machine_load import MachineLoad, Sample, around
from bench.measure import joined_reader, percentiles
from bench.process_usage import broker_counters, broker_jit_seconds, counted_between, cpu_seconds, cpu_used
from bench.simulated_providers import providers_apart
from bench.steps import paced_broker_figures, paced_cpu_figures, until_settled, with_meters
from kernel.topics import topic
from providers.kafka_simulator import Coverage
from workers.registry import ALL


async def paced_lookup(tag: str, rate: float, seconds: float) -> tuple[dict[str, Any], BenchEnv]:
    """The paced lookup latency as `make bench` and `--only latency` report it: paced flows until the broker's JIT has
    settled (`paced_warm_up`, on an environment of its own), then the latency on a new environment of 10,000 meters,
    with the CPU per attempt and what the broker did meanwhile. Its figures, and the environment measured."""
    warm = await with_meters(f"{tag}v", 10_000)
    r: dict[str, Any] = {"paced_warm_up_broker_jit_s": await paced_warm_up(warm, rate)}
    await retire(warm)  # its autovacuum would otherwise run during the measured flow
    timed = await with_meters(f"{tag}l", 10_000)  # fresh topics: the reader counts from their start
    cpu: dict[str, float] = {}
    broker: dict[str, float] = {}
    slowest: list[dict[str, Any]] = []
    lat = await lookup_latency(timed, rate, seconds, 10_000, cpu=cpu, broker=broker, slowest=slowest)
    r.update({f"lookup_{k}_ms_at_{rate:.0f}": v for k, v in lat.items()})
    r[f"lookup_slowest_windows_at_{rate:.0f}"] = slowest
    return r | paced_cpu_figures(cpu, rate) | paced_broker_figures(broker, rate), timed


async def lookup_latency(
    env: BenchEnv,
    rate: float,
    seconds: float,
    meters: int,
    again: bool = False,
    cpu: dict[str, float] | None = None,
    broker: dict[str, float] | None = None,
    slowest: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """From each attempt's send to its lookup request being readable on the provider's topic.

    Reported apart: the first second (cold start: a new environment's first traffic, `--only cold-start`), the steady
    state after a warm-up of WARM_UP_S, and the median per second at the start and at the end of the steady state
    (a backlog that grows shows as a rising median, which percentiles over the whole run hide). `again`: on an
    environment measured before (its requests already on the topics are left out), as after a restart. `cpu`, when
    given, is filled with the CPU µs per attempt of each part of the flow (as `flows.lookup_cpu` counts it) while
    the paced attempts flowed: at this rate a batch holds a dozen attempts, so its fixed costs show there, not in
    the backlog's figure. `broker`, when given, is filled with what the local broker did meanwhile: its collector's
    pauses (count and ms) and its JIT's compile seconds (nothing when no local broker can be read). `slowest`, when
    given, is filled with the steady state's slowest windows (`slow_windows`)."""
    procs = start_workers(env, "lookup", "outbox-relay")
    named = {"lookup worker": procs[0].pid, "outbox relay": procs[1].pid}
    received: dict[str, float] = {}
    stamped: dict[str, tuple[float, float]] = {}  # the request's own time (made by the worker), its produce time

    def record(rec: ConsumerRecord[bytes, bytes], at: float) -> None:
        request = json.loads(rec.value or b"")
        received[request["correlationid"]] = at
        stamped[request["correlationid"]] = (datetime.fromisoformat(request["time"]).timestamp(), rec.timestamp / 1000)

    machine = MachineLoad()  # sampled while the attempts flow, when the slowest windows are asked for
    sampling: asyncio.Task[None] | None = None
    try:
        await asyncio.sleep(8)  # members join their groups before the clock starts
        reader = await joined_reader(
            env.bootstrap, request_topics(env), int(rate * seconds), LABEL, on_record=record, from_end=again
        )
        counters = broker_counters()  # read with jstat before the CPU window opens, not inside it
        before = cpu_seconds(named)
        sampling = asyncio.create_task(machine.run()) if slowest is not None else None
        sent = await paced_attempts(env, lambda: known_meter(meters), rate, seconds)
        await reader
        if cpu is not None:
            cpu.update({k: v * 1e6 / len(sent) for k, v in cpu_used(before, cpu_seconds(named)).items()})
        if broker is not None:
            broker.update(counted_between(counters, broker_counters()))
    finally:
        if sampling is not None:
            sampling.cancel()
        stop(procs)
    if slowest is not None:
        slowest.extend(slow_windows(sent, stamped, received, load=machine.samples))
    return latency_figures(sent, received) | stage_figures(sent, stamped, received)


WARM_UP_S = 3.0
PACED_WARM_UP_S, PACED_WARM_UP_TRIES, PACED_SETTLED_JIT_S = 10.0, 4, 0.1
LABEL = "latency: requests out"


async def paced_warm_up(env: BenchEnv, rate: float, meters: int = 10_000) -> list[float]:
    """Paced lookup flows of PACED_WARM_UP_S, not measured, on an environment of their own (the one measured after
    keeps its own cold start), until the broker's JIT compiled under PACED_SETTLED_JIT_S per 10,000 attempts during
    one (at most PACED_WARM_UP_TRIES). The backlog warm-up (bench/steps.warm_up) does not reach a broker's paced
    path (fetches held for data, small produce requests): right after a broker's start, three `--only latency` runs
    in a row measured p99 268, 128 and 59 ms, and 31-42 ms in the five after them. Each flow's compile seconds."""
    procs = start_workers(env, "lookup", "outbox-relay")
    n = int(rate * PACED_WARM_UP_S)

    async def flow(_: int) -> None:
        reader = await joined_reader(env.bootstrap, request_topics(env), n, LABEL, from_end=True)
        await paced_attempts(env, lambda: known_meter(meters), rate, PACED_WARM_UP_S)
        await reader

    try:
        await asyncio.sleep(8)
        done = await until_settled(flow, broker_jit_seconds, n, PACED_WARM_UP_TRIES, PACED_SETTLED_JIT_S)
    finally:
        stop(procs)
    return [jit for _, jit in done if jit is not None]


def latency_figures(sent: dict[str, float], received: dict[str, float]) -> dict[str, float]:
    """ms figures from send and receive times (epoch seconds) keyed by correlation id."""
    start = min(sent.values())
    by_second: dict[int, list[float]] = {}
    for corr, at in sent.items():
        if corr in received:
            by_second.setdefault(int(at - start), []).append(received[corr] - at)
    steady = [v for second, values in by_second.items() if second >= WARM_UP_S for v in values]
    seconds = sorted(s for s in by_second if s >= WARM_UP_S)
    figures = {f"{k}": v * 1000 for k, v in percentiles(steady).items()}
    figures["cold_p99"] = percentiles(by_second.get(0, []))["p99"] * 1000
    figures["p50_first_steady_s"] = percentiles(by_second[seconds[0]])["p50"] * 1000 if seconds else float("nan")
    figures["p50_last_s"] = percentiles(by_second[seconds[-1]])["p50"] * 1000 if seconds else float("nan")
    # Whether the tail is spread or a few slow seconds (a stall: a collector pause, a checkpoint, a neighbour): each
    # steady second's p99, their median and the worst. A whole-run p99 over 50 ms with a median second far under it
    # is a few stalls, not a flow that is slow throughout.
    each = sorted(percentiles(by_second[s])["p99"] * 1000 for s in seconds)
    figures["p99_median_s"] = statistics.median(each) if each else float("nan")
    figures["p99_worst_s"] = each[-1] if each else float("nan")
    figures["lost"] = float(len(sent) - sum(len(v) for v in by_second.values()))
    return figures


def stages(
    sent: dict[str, float], stamped: dict[str, tuple[float, float]], received: dict[str, float]
) -> dict[str, Callable[[str], float]]:
    """Each stage's seconds for an attempt (as `stage_figures` describes them), by correlation id."""
    return {
        "worker": lambda c: stamped[c][0] - sent[c],
        "relay": lambda c: stamped[c][1] - stamped[c][0],
        "broker": lambda c: received[c] - stamped[c][1],
    }


def slow_windows(
    sent: dict[str, float],
    stamped: dict[str, tuple[float, float]],
    received: dict[str, float],
    count: int = 5,
    load: list[Sample] | None = None,
) -> list[dict[str, Any]]:
    """The `count` steady-state windows of 100 ms whose slowest attempt was slowest, in time order: when each began
    (UTC, to set beside `.local/kafka/gc.log` and the database's log), its slowest attempt (ms) and each stage's
    slowest (as `stage_figures` splits them). A stall shows as one or a few windows far above the rest; which stage
    it sits in and what the broker or the database did at that moment say where it came from (README, stop 50:
    autovacuum in a leftover database, the broker's concurrent marking, a slow commit). With `load`
    (bench/machine_load.py), how busy the machine was from each window's start: its lowest idle share and highest
    CPU pressure."""
    start = min(sent.values(), default=0.0)
    windows: dict[int, list[str]] = {}
    for c, at in sent.items():
        if c in stamped and c in received and at - start >= WARM_UP_S:
            windows.setdefault(int((at - start) * 10), []).append(c)

    def slowest(ids: list[str], stage: Callable[[str], float]) -> float:
        return round(max(map(stage, ids)) * 1000, 1)

    each = stages(sent, stamped, received)
    found: list[dict[str, Any]] = [
        {
            "at": datetime.fromtimestamp(start + w / 10, UTC).isoformat(timespec="milliseconds"),
            "ms": slowest(ids, lambda c: received[c] - sent[c]),
            **{f"{name}_ms": slowest(ids, stage) for name, stage in each.items()},
            **(around(load, start + w / 10) if load is not None else {}),
        }
        for w, ids in windows.items()
    ]
    return sorted(sorted(found, key=lambda f: f["ms"])[-count:], key=lambda f: f["at"])


def stage_figures(
    sent: dict[str, float], stamped: dict[str, tuple[float, float]], received: dict[str, float]
) -> dict[str, float]:
    """Where the steady state's latency goes, p50 and p99 of each stage (ms): `stage_worker`, from the attempt's send
    until the lookup worker made its request (the wait for the batch in progress, then its own batch up to that
    point); `stage_relay`, from then until the relay produced it (the rest of the batch, its commit, the relay's
    pick-up); `stage_broker`, from then until the reader had it (acknowledgement and fetch). The first second's p99
    of each stage too (`cold_stage_*_p99`), to show where the cold start goes. One clock: every process runs on this
    machine."""
    start = min(sent.values(), default=0.0)
    read = [c for c in sent if c in stamped and c in received]
    steady = [c for c in read if sent[c] - start >= WARM_UP_S]
    cold = [c for c in read if sent[c] - start < 1]  # the first second: where its cold start goes, by stage
    figures: dict[str, float] = {}
    each = stages(sent, stamped, received)
    for name, ids, wanted in (("stage", steady, ("p50", "p99")), ("cold_stage", cold, ("p99",))):
        for stage, seconds in each.items():
            found = percentiles([seconds(c) for c in ids])
            figures.update({f"{name}_{stage}_{p}": found[p] * 1000 for p in wanted})
    return figures


async def first_seen_decisions(env: BenchEnv, rate: float, seconds: float) -> dict[str, float]:
    """A purchase on a meter never seen before: five providers asked, four answer within 20-200 ms, one stays
    silent. From the attempt's send to its decision being readable on the routing-decisions topic: the decision
    budget, not the round's deadline (60 s), bounds it. Reported as the lookup latency is (latency_figures): the
    first second apart (the relay's first records to the decision and event topics took 50-270 ms to be
    acknowledged, 1-8 ms afterwards; the cause is not pinned down), the steady state after WARM_UP_S."""
    procs = start_workers(env, *ALL)
    coverages = {p: Coverage(re.compile(r"\d+"), latency_ms=(20, 200)) for p in PROVIDERS[:-1]}
    coverages[PROVIDERS[-1]] = Coverage(re.compile(r"\d+"), silent=True)
    decided: dict[str, float] = {}

    def record(rec: ConsumerRecord[bytes, bytes], at: float) -> None:
        decided[json.loads(rec.value or b"")["correlationid"]] = at

    try:
        with providers_apart(env.bootstrap, env.settings.topic_prefix, coverages):
            await asyncio.sleep(8)  # workers and simulators join their groups
            total = int(rate * seconds)
            decisions = topic("routing_decisions").name(env.settings.topic_prefix)
            reader = await joined_reader(env.bootstrap, [decisions], total, "first-seen decisions", on_record=record)
            counter = iter(range(total))
            sent = await paced_attempts(env, lambda: f"09{next(counter):08d}", rate, seconds)  # never seen
            await reader
    finally:
        stop(procs)
    return latency_figures(sent, decided)
