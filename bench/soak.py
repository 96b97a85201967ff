"""`ppu soak` / `make soak DURATION=30m`: the whole system at a steady rate for a long time, the way payment hubs
report theirs: purchase → decision latency per minute (p50, p99), attempts lost, worker memory and table sizes over
time, in bench/results/<stamp>-soak.{json,md,png}.

Every worker runs as its own process, and so does each of the five simulated providers (answering every lookup in
5-50 ms); the load and the reader of decisions share this process. Most attempts are for known meters (decided at
once, with a routine lookup); `new_share` of them are for meters never seen (a round to all five providers, decided
when they have answered). Each sample records the CPU seconds of every part (workers, providers, this process,
PostgreSQL, Kafka), so a minute that falls behind shows which part ran out of CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
from aiokafka import ConsumerRecord

from bench.env import PROVIDERS, ROOT, BenchEnv, prepare, start_workers, stop
from bench.flows import known_meter, paced_attempts, preload_meters
from bench.measure import joined_reader, percentiles
from bench.process_usage import cpu_seconds, cpu_used
from kernel.topics import topic
from workers.registry import ALL

TABLES = ("purchase_attempts", "routing_decisions", "lookup_rounds", "lookups", "meters", "inbox", "outbox")
SAMPLE_EVERY_S = 10.0


async def soak_run(duration_s: float, rate: float, new_share: float, meters: int = 10_000) -> dict[str, Any]:
    env = await prepare(f"k{int(time.time())}")
    await preload_meters(env, meters)
    procs = start_workers(env, *ALL)
    pids = {name: p.pid for name, p in zip(ALL, procs, strict=True)}
    sims = [_provider(env, p) for p in PROVIDERS]
    sim_pids = [s.pid for s in sims]  # apart from the workers: memory is sampled per worker, CPU for all together
    done = asyncio.Event()
    samples: list[dict[str, Any]] = []
    decided: dict[str, float] = {}
    copies = 0

    def record(rec: ConsumerRecord[bytes, bytes], at: float) -> None:
        nonlocal copies
        copies += 1
        decided.setdefault(json.loads(rec.value or b"")["correlationid"], at)

    new = itertools.count()

    def meter() -> str:
        return f"08{next(new):08d}" if random.random() < new_share else known_meter(meters)

    total = int(rate * duration_s)
    sampling = asyncio.ensure_future(_sample(env, pids, sim_pids, samples, done))
    try:
        await asyncio.sleep(8)  # workers and simulators join their groups
        decisions = topic("routing_decisions").name(env.settings.topic_prefix)
        reader = await joined_reader(
            env.bootstrap, [decisions], total, "soak: decisions", 2 * duration_s + 600, on_record=record
        )
        started = time.time()
        sent = await paced_attempts(env, meter, rate, duration_s)
        drained = time.time()  # a backlog left when sending stops shows as the time it takes to drain
        await _drain(reader, lambda: len(decided))  # what is still queued when sending stops is decided, or lost
        drained = time.time() - drained
    finally:
        done.set()
        await asyncio.gather(sampling, return_exceptions=True)
        stop([*procs, *sims])
    return {**_report(sent, decided, copies, samples, started, rate, duration_s, new_share), "drain_s": drained}


def _provider(env: BenchEnv, provider_id: str) -> subprocess.Popen[bytes]:
    sim = ["provider-sim", "--provider", provider_id, "--supports", r"\d+", "--latency-ms", "5,50"]
    return subprocess.Popen(
        [sys.executable, "-m", "ppu.cli", *sim],
        cwd=ROOT,
        env=env.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _drain(reader: asyncio.Future[list[int]], count: Callable[[], int], quiet_s: float = 60) -> None:
    """Waits for the reader until every decision is read, or none has come for `quiet_s` (the rest is lost)."""
    last, since = count(), time.monotonic()
    while not reader.done() and time.monotonic() - since < quiet_s:
        await asyncio.wait([reader], timeout=1)
        if count() != last:
            last, since = count(), time.monotonic()
    reader.cancel()


async def _sample(
    env: BenchEnv, pids: dict[str, int], sim_pids: list[int], samples: list[dict[str, Any]], done: asyncio.Event
) -> None:
    conn = await env.db()
    groups = {"providers": sim_pids, "load and reader": [os.getpid()]}
    last, cpu = cpu_seconds(pids, groups), dict.fromkeys(ALL, 0.0)
    try:
        while not done.is_set():
            rss = {}
            for name, pid in pids.items():
                try:
                    rss[name] = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    rss[name] = float("nan")
            sizes = {
                r["t"]: r["mb"]
                for r in await conn.fetch(
                    # A partitioned table's own size is 0: its partitions' sizes, summed (pg_partition_tree lists
                    # nothing for a plain table: its own size).
                    """SELECT t, coalesce((SELECT sum(pg_total_relation_size(relid))
                                           FROM pg_partition_tree(t::regclass)),
                                          pg_total_relation_size(t::regclass)) / 1048576.0 AS mb
                       FROM unnest($1::text[]) t""",
                    list(TABLES),
                )
            }
            # Summed per process since the last sample: a database backend that exits takes its total with it, so
            # totals summed over the processes alive could fall (bench/env.py cpu_used).
            now = cpu_seconds(pids, groups)
            for part, seconds in cpu_used(last, now).items():
                cpu[part] = cpu.get(part, 0.0) + seconds
            last = now
            table_mb = {k: float(v) for k, v in sizes.items()}
            samples.append({"t": time.time(), "rss_mb": rss, "table_mb": table_mb, "cpu_s": dict(cpu)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), SAMPLE_EVERY_S)
    finally:
        await conn.close()


def _report(
    sent: dict[str, float],
    decided: dict[str, float],
    copies: int,
    samples: list[dict[str, Any]],
    started: float,
    rate: float,
    duration_s: float,
    new_share: float,
) -> dict[str, Any]:
    minutes: dict[int, list[float]] = {}
    for corr, at in sent.items():
        if corr in decided:
            minutes.setdefault(int((at - started) // 60), []).append((decided[corr] - at) * 1000)
    per_minute = [
        {"minute": m + 1, "decided": len(v), **{k: round(x, 1) for k, x in percentiles(v).items()}}
        for m, v in sorted(minutes.items())
    ]
    every = [ms for v in minutes.values() for ms in v]
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "new_meter_share": new_share,
        "attempts_sent": len(sent),
        "attempts_decided": sum(1 for c in sent if c in decided),
        "attempts_lost": sum(1 for c in sent if c not in decided),
        "decision_copies_beyond_one": copies - len(decided),
        **{f"decision_{k}_ms": v for k, v in percentiles(every).items()},
        "worst_minute_p99_ms": max((m["p99"] for m in per_minute), default=float("nan")),
        "per_minute": per_minute,
        "samples": [{**s, "t": round(s["t"] - started, 1)} for s in samples],
    }
