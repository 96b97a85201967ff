"""Our flows under load: lookup (attempts in, lookup requests out), responses (answers in, support committed),
latency at a fixed offered load, a soak for memory, console search, and scale-out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg
from aiokafka import ConsumerRecord

from bench.env import INSTITUTION, PROVIDERS, BenchEnv, RssSampler, cpu_seconds, cpu_used, start_workers, stop
from bench.floors import attempts
from bench.measure import paced, percentiles, produce, read_until, steady_rate
from bench.simulated_providers import providers_apart
from console.queries import SESSION_SETTINGS, search_meters
from kernel.ids import new_id
from kernel.topics import topic
from operations.timeline import meter_timeline
from schemas.lookup import LookupResponded, LookupRespondedData
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from workers.registry import ALL


async def preload_meters(env: BenchEnv, meters: int) -> None:
    """`meters` known meters; each supported by one of the five providers and not by the others."""
    conn = await env.db()
    try:
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
    finally:
        await conn.close()


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


async def _preload_lookups(env: BenchEnv, n: int, meters: int) -> list[tuple[uuid.UUID, str, str]]:
    # Round and lookup ids are the system's own UUIDv7 (kernel/ids.py): the responses consumer reads lookups
    # by id within the live window's partitions, as it reads those the lookup worker made.
    rows = [(new_id(), f"06{i % meters:08d}", PROVIDERS[i % 5]) for i in range(n)]
    conn = await env.db()
    try:
        now = datetime.now(UTC)
        rounds = [(new_id(), m) for _, m, _ in rows]
        await conn.copy_records_to_table(
            "lookup_rounds",
            columns=["round_id", "meter_number", "reason", "opened_at", "deadline", "closed_at", "providers_asked"],
            records=[
                (r, m, "routine", now, now + timedelta(minutes=5), now, [p])
                for (r, m), (_, _, p) in zip(rounds, rows, strict=True)
            ],
        )
        await conn.copy_records_to_table(
            "lookups",
            columns=["lookup_id", "round_id", "meter_number", "provider_id", "sent_at"],
            records=[(lk, r, m, p, now) for (lk, m, p), (r, _) in zip(rows, rounds, strict=True)],
        )
    finally:
        await conn.close()
    return rows


def _response(lookup_id: uuid.UUID, meter: str, provider: str, i: int) -> tuple[bytes, bytes]:
    data = LookupRespondedData(
        lookup_id=lookup_id,
        provider_id=provider,
        meter_number=meter,
        status="supported" if i % 2 else "not_supported",
        responded_at=datetime.now(UTC),
    )
    event = LookupResponded.new(data, source="bench", correlationid=str(lookup_id))
    return meter.encode(), event.encode()


async def response_flow(env: BenchEnv, n: int, meters: int) -> tuple[float, RssSampler]:
    rows = await _preload_lookups(env, n, meters)
    responses = (_response(lk, m, p, i) for i, (lk, m, p) in enumerate(rows))
    await produce(
        env.bootstrap, topic("lookup_responses").name(env.settings.topic_prefix), responses, n, "response flow: load"
    )
    procs = start_workers(env, "responses")
    sampler, done = RssSampler([p.pid for p in procs]), asyncio.Event()
    sampling = asyncio.ensure_future(sampler.run(done))
    conn = await env.db()
    marks: dict[int, float] = {}
    try:
        async with asyncio.timeout(600):
            while True:
                answered = await conn.fetchval("SELECT count(*) FROM lookups WHERE responded_at IS NOT NULL")
                for pct in (5, 95):
                    if answered >= n * pct / 100 and pct not in marks:
                        marks[pct] = time.monotonic()
                if answered >= n:
                    break
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
        done.set()
        await sampling
        stop(procs)
    return n * 0.9 / (marks[95] - marks[5]), sampler


async def paced_attempts(env: BenchEnv, meter: Callable[[], str], rate: float, seconds: float) -> dict[str, float]:
    """Purchase attempts at `rate` per second for `seconds`, on the meters `meter()` names; correlation id → sent."""

    def make() -> tuple[bytes, bytes, str]:
        number = meter()
        data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=number, institution_id=INSTITUTION)
        event = PurchaseAttempted.new(data, source="bench", correlationid=str(data.attempt_id))
        return number.encode(), event.encode(), event.correlationid

    return await paced(env.bootstrap, topic("purchase_attempts").name(env.settings.topic_prefix), make, rate, seconds)


async def lookup_latency(env: BenchEnv, rate: float, seconds: float, meters: int) -> dict[str, float]:
    """From each attempt's send to its lookup request being readable on the provider's topic.

    Reported apart: the first second (cold start: first sends to topics never written, first plans), the steady
    state after a warm-up of WARM_UP_S, and the median per second at the start and at the end of the steady state
    (a backlog that grows shows as a rising median, which percentiles over the whole run hide)."""
    procs = start_workers(env, "lookup", "outbox-relay")
    received: dict[str, float] = {}
    stamped: dict[str, tuple[float, float]] = {}  # the request's own time (made by the worker), its produce time

    def record(rec: ConsumerRecord[bytes, bytes], at: float) -> None:
        request = json.loads(rec.value or b"")
        received[request["correlationid"]] = at
        stamped[request["correlationid"]] = (datetime.fromisoformat(request["time"]).timestamp(), rec.timestamp / 1000)

    try:
        await asyncio.sleep(8)  # members join their groups before the clock starts
        joined = asyncio.Event()
        reader = asyncio.ensure_future(
            read_until(
                env.bootstrap,
                request_topics(env),
                int(rate * seconds),
                "latency: requests out",
                on_record=record,
                ready=joined,
            )
        )
        await asyncio.wait_for(joined.wait(), 60)  # and so does the reader

        sent = await paced_attempts(env, lambda: f"06{random.randrange(meters):08d}", rate, seconds)
        await reader
    finally:
        stop(procs)
    return latency_figures(sent, received) | stage_figures(sent, stamped, received)


WARM_UP_S = 3.0


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
    figures["lost"] = float(len(sent) - sum(len(v) for v in by_second.values()))
    return figures


def stage_figures(
    sent: dict[str, float], stamped: dict[str, tuple[float, float]], received: dict[str, float]
) -> dict[str, float]:
    """Where the steady state's latency goes, p50 and p99 of each stage (ms): `stage_worker`, from the attempt's send
    until the lookup worker made its request (the wait for the batch in progress, then its own batch up to that
    point); `stage_relay`, from then until the relay produced it (the rest of the batch, its commit, the relay's
    pick-up); `stage_broker`, from then until the reader had it (acknowledgement and fetch). One clock: every
    process runs on this machine."""
    start = min(sent.values(), default=0.0)
    steady = [c for c, at in sent.items() if at - start >= WARM_UP_S and c in stamped and c in received]
    stages = {
        "worker": [stamped[c][0] - sent[c] for c in steady],
        "relay": [stamped[c][1] - stamped[c][0] for c in steady],
        "broker": [received[c] - stamped[c][1] for c in steady],
    }
    return {
        f"stage_{name}_{p}": v * 1000
        for name, values in stages.items()
        for p, v in percentiles(values).items()
        if p != "p95"
    }


async def response_latency(env: BenchEnv, rate: float, seconds: float, meters: int) -> dict[str, float]:
    """From each response's send to its status being committed (seen by polling every 5 ms, a sample of 1 in 5)."""
    rows = await _preload_lookups(env, int(rate * seconds), meters)
    procs = start_workers(env, "responses")
    conn = await env.db()
    seen: dict[uuid.UUID, float] = {}
    try:
        await asyncio.sleep(8)
        queue = iter(enumerate(rows))
        made = 0  # responses handed to the sender so far, in the order of `rows`

        def make() -> tuple[bytes, bytes, str]:
            nonlocal made
            i, (lk, m, p) = next(queue)
            made = i + 1
            key, value = _response(lk, m, p, i)
            return key, value, str(lk)

        sender = asyncio.ensure_future(
            paced(env.bootstrap, topic("lookup_responses").name(env.settings.topic_prefix), make, rate, seconds)
        )
        sample = [(i, lk) for i, (lk, _, _) in enumerate(rows) if i % 5 == 0]
        while len(seen) < len(sample) and not (sender.done() and time.time() - max(seen.values(), default=0) > 10):
            # Only those sent: asking for the whole sample every 5 ms (6,000 ids at first) was a load of its own on
            # the 2 cores the flow runs on, and put the measuring in the figure.
            pending = [lk for i, lk in sample if i < made and lk not in seen]
            now = time.time()
            for r in await conn.fetch(
                "SELECT lookup_id FROM lookups WHERE lookup_id = ANY($1::uuid[]) AND responded_at IS NOT NULL", pending
            ):
                seen[r["lookup_id"]] = now
            await asyncio.sleep(0.005)
        sent = await sender
    finally:
        await conn.close()
        stop(procs)
    return {k: v * 1000 for k, v in percentiles([seen[lk] - sent[str(lk)] for lk in seen]).items()}


async def timeline_latency(env: BenchEnv, meters: int, pages: int = 30) -> dict[str, float]:
    """A meter page's timeline (its first page), ms."""
    return await _console_reads(
        env, [partial(meter_timeline, institution_id=INSTITUTION, meter_number=_meter(meters)) for _ in range(pages)]
    )


async def search_latency(env: BenchEnv, meters: int, queries: int = 300) -> dict[str, float]:
    def query(i: int) -> str:
        n = _meter(meters)
        return n[: random.randint(4, 9)] if i % 3 else n[3:8]  # mostly prefixes, every third an infix

    return await _console_reads(env, [partial(search_meters, q=query(i)) for i in range(queries)])


def _meter(meters: int) -> str:
    return f"06{random.randrange(meters):08d}"


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


async def soak(env: BenchEnv, rate: float, seconds: float, meters: int) -> RssSampler:
    """Every worker under a steady load, with simulated providers answering; returns their memory samples."""
    import re

    from providers.kafka_simulator import Coverage

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


async def first_seen_decisions(env: BenchEnv, rate: float, seconds: float) -> dict[str, float]:
    """A purchase on a meter never seen before: five providers asked, four answer within 20-200 ms, one stays
    silent. From the attempt's send to its decision being readable on the routing-decisions topic: the decision
    budget, not the round's deadline (60 s), bounds it. Reported as the lookup latency is (latency_figures): the
    first second apart (the relay's first records to the decision and event topics took 50-270 ms to be
    acknowledged, 1-8 ms afterwards; the cause is not pinned down), the steady state after WARM_UP_S."""
    import re

    from providers.kafka_simulator import Coverage

    procs = start_workers(env, *ALL)
    coverages = {p: Coverage(re.compile(r"\d+"), latency_ms=(20, 200)) for p in PROVIDERS[:-1]}
    coverages[PROVIDERS[-1]] = Coverage(re.compile(r"\d+"), silent=True)
    decided: dict[str, float] = {}

    def record(rec: ConsumerRecord[bytes, bytes], at: float) -> None:
        decided[json.loads(rec.value or b"")["correlationid"]] = at

    try:
        with providers_apart(env.bootstrap, env.settings.topic_prefix, coverages):
            await asyncio.sleep(8)  # workers and simulators join their groups
            joined = asyncio.Event()
            total = int(rate * seconds)
            decisions = topic("routing_decisions").name(env.settings.topic_prefix)
            reader = asyncio.ensure_future(
                read_until(env.bootstrap, [decisions], total, "first-seen decisions", on_record=record, ready=joined)
            )
            await asyncio.wait_for(joined.wait(), 60)
            counter = iter(range(total))
            sent = await paced_attempts(env, lambda: f"09{next(counter):08d}", rate, seconds)  # never seen
            await reader
    finally:
        stop(procs)
    return latency_figures(sent, decided)
