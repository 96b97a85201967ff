"""The lookup flow under load (attempts in, lookup requests out): its throughput, its CPU, and the soak's memory.
The other flows are beside it: bench/response_flows.py, bench/latency.py (paced, first-seen), bench/console_reads.py."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager

import asyncpg

from bench.env import INSTITUTION, PROVIDERS, BenchEnv, start_workers, stop
from bench.floors import attempts
from bench.measure import paced, produce, read_until, steady_rate
from bench.process_usage import RssSampler, cpu_seconds, cpu_used
from bench.simulated_providers import providers_apart
from kernel.topics import topic
from providers.kafka_simulator import Coverage
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from workers.registry import ALL


def known_meter(meters: int) -> str:
    """One of the `meters` meters `preload_meters` makes, at random."""
    return f"06{random.randrange(meters):08d}"


async def preload_meters(env: BenchEnv, meters: int) -> None:
    """`meters` known meters; each supported by one of the five providers and not by the others."""
    conn = await env.db()
    try:
        await add_meters(conn, meters)
    finally:
        await conn.close()


async def add_meters(conn: asyncpg.Connection, meters: int) -> None:
    """`preload_meters` on a connection: the providers `bp1`…`bp5` must exist."""
    await conn.execute(
        """INSERT INTO meters (meter_number)
                              SELECT '06' || lpad(g::text, 8, '0') FROM generate_series(0, $1 - 1) g""",
        meters,
    )
    await conn.execute(
        """INSERT INTO meter_support (meter_number, provider_id, status, last_response_at)
           SELECT '06' || lpad(g::text, 8, '0'), 'bp' || p,
                  CASE WHEN p = g % 5 + 1 THEN 'supported' ELSE 'not_supported' END, now()
           FROM generate_series(0, $1 - 1) g, generate_series(1, 5) p""",
        meters,
    )
    await conn.execute("VACUUM ANALYZE")  # not autovacuum in the middle of a measurement


def request_topics(env: BenchEnv) -> list[str]:
    return [topic("lookup_requests").name(env.settings.topic_prefix, provider_id=p) for p in PROVIDERS]


def with_poison(messages: Iterable[tuple[bytes, bytes]], every: int) -> Iterator[tuple[bytes, bytes]]:
    """After every `every`-th message, one that cannot be decoded or validated (three kinds in turn)."""
    for i, (key, value) in enumerate(messages):
        yield key, value
        if every and i % every == every - 1:
            kinds = [b"\xff\xfe%d" % i, b'{"specversion": "1.0", "id": %d' % i, b'{"specversion": "1.0", "n": %d}' % i]
            yield key, kinds[i // every % 3]


async def lookup_flow(
    env: BenchEnv,
    n: int,
    meters: int,
    workers: int = 1,
    cores: dict[str, float] | None = None,
    poison_every: int = 0,
    relays: int = 1,
) -> tuple[float, RssSampler]:
    """Known supported meters: each attempt is routed at once and sends one routine lookup request.
    `cores`, when given, receives the CPU cores each part used on average while the flow ran. With
    `poison_every`, poison messages are mixed in; the rate is still that of the good messages' requests out."""
    await produce(
        env.bootstrap,
        topic("purchase_attempts").name(env.settings.topic_prefix),
        with_poison(attempts(n, meters), poison_every),
        n + (n // poison_every if poison_every else 0),
        f"lookup flow ({meters:,} meters): load",
    )
    procs = start_workers(env, *(["lookup"] * workers), *(["outbox-relay"] * relays))
    sampler, done = RssSampler([p.pid for p in procs]), asyncio.Event()
    sampling = asyncio.ensure_future(sampler.run(done))
    named = {f"lookup worker {i + 1}": p.pid for i, p in enumerate(procs[:workers])} | {
        f"outbox relay {i + 1}": p.pid for i, p in enumerate(procs[workers:])
    }
    before, started = cpu_seconds(named), time.monotonic()
    try:
        stamps = await read_until(env.bootstrap, request_topics(env), n, "lookup flow: requests out")
        after, wall = cpu_seconds(named), time.monotonic() - started
        if cores is not None:
            cores.update({k: v / wall for k, v in cpu_used(before, after).items()})
    finally:
        done.set()
        await sampling
        stop(procs)
    return steady_rate(stamps), sampler


async def lookup_cpu(
    env: BenchEnv, n: int, meters: int, around: Callable[[list[int]], AbstractAsyncContextManager[None]] | None = None
) -> dict[str, float]:
    """CPU µs per attempt of each part of the lookup flow (lookup worker, relay, every PostgreSQL and Kafka process)
    while `n` attempts flow, with the workers started and in their groups first: their start-up is not counted.
    `around` wraps the measured part (the profiler attaches there)."""
    procs = start_workers(env, "lookup", "outbox-relay")
    named = {"lookup worker": procs[0].pid, "outbox relay": procs[1].pid}
    try:
        await asyncio.sleep(8)
        async with around(list(named.values())) if around else contextlib.nullcontext():
            before = cpu_seconds(named)
            source = topic("purchase_attempts").name(env.settings.topic_prefix)
            await produce(env.bootstrap, source, attempts(n, meters), n, "lookup CPU: load")
            await read_until(env.bootstrap, request_topics(env), n, "lookup CPU: requests out")
            after = cpu_seconds(named)
    finally:
        stop(procs)
    return {k: v * 1e6 / n for k, v in cpu_used(before, after).items()}


async def paced_attempts(env: BenchEnv, meter: Callable[[], str], rate: float, seconds: float) -> dict[str, float]:
    """Purchase attempts at `rate` per second for `seconds`, on the meters `meter()` names; correlation id → sent."""

    def make() -> tuple[bytes, bytes, str]:
        number = meter()
        data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=number, institution_id=INSTITUTION)
        event = PurchaseAttempted.new(data, source="bench", correlationid=str(data.attempt_id))
        return number.encode(), event.encode(), event.correlationid

    return await paced(env.bootstrap, topic("purchase_attempts").name(env.settings.topic_prefix), make, rate, seconds)


async def soak(env: BenchEnv, rate: float, seconds: float, meters: int) -> RssSampler:
    """Every worker under a steady load, with simulated providers answering; returns their memory samples."""
    procs = start_workers(env, *ALL)
    sampler, done = RssSampler([p.pid for p in procs], every=1.0), asyncio.Event()
    coverages = {p: Coverage(re.compile(r"06\d*[02468]")) for p in PROVIDERS}
    sampling = asyncio.ensure_future(sampler.run(done))
    try:
        with providers_apart(env.bootstrap, env.settings.topic_prefix, coverages):
            # Half known meters, half new ones (first-seen rounds).
            await paced_attempts(env, lambda: f"06{random.randrange(meters * 2):08d}", rate, seconds)
    finally:
        done.set()
        await sampling
        stop(procs)
    return sampler
