"""The floor (what the machine can do: a plain aiokafka relay, a plain asyncpg batched upsert) and the peer
(the same relay as a faust-streaming agent), all on the same broker and database as the flows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.env import INSTITUTION, PROVIDERS, ROOT, BenchEnv
from bench.measure import produce, read_until, steady_rate
from bench.process_usage import cpu_seconds, cpu_used
from infra.topic_admin import admin_client, apply
from kernel.connections import started_producer
from kernel.topics import topic
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData

FAUST_PYTHON = ROOT / ".local" / "faust-venv" / "bin" / "python"


def attempts(n: int, meters: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(n):
        meter = f"06{i * 7919 % meters:08d}"
        event = PurchaseAttempted.new(
            PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=meter, institution_id=INSTITUTION),
            source="bench",
            correlationid=str(i),
        )
        yield meter.encode(), event.encode()


async def _relay_topics(env: BenchEnv, tag: str) -> tuple[str, str]:
    prefix = f"{env.settings.topic_prefix}{tag}."
    async with admin_client(env.bootstrap) as client:
        await apply(client, prefix, PROVIDERS[:1])
    return topic("purchase_attempts").name(prefix), topic("lookup_requests").name(prefix, provider_id=PROVIDERS[0])


async def relay_floor(env: BenchEnv, n: int) -> float:
    async with _loaded(env, "floor", n) as (consumer, producer, sink):
        await _relay(consumer, producer, sink, n)
    return steady_rate(await read_until(env.bootstrap, [sink], n, "floor: relayed"))


async def relay_floor_cpu(env: BenchEnv, n: int) -> dict[str, float]:
    """CPU µs per message of the floor relay (this process) and of every Kafka process while it relays `n` messages
    from a backlog, its start-up and first batch not counted: the least a Python process on aiokafka spends to take a
    message and hand one on, against which `cpu_us_per_attempt` (one taken, two handed on, rows stored) reads."""
    async with _loaded(env, "floorcpu", n) as (consumer, producer, sink):
        first = await _relay(consumer, producer, sink, 1)
        before = cpu_seconds({"floor relay": os.getpid()})
        await _relay(consumer, producer, sink, n - first)
        used = cpu_used(before, cpu_seconds({"floor relay": os.getpid()}))
    return {part: used.get(part, 0.0) * 1e6 / (n - first) for part in ("floor relay", "kafka")}


@contextlib.asynccontextmanager
async def _loaded(env: BenchEnv, tag: str, n: int) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer, str]]:
    """The floor relay's consumer (from the start of `n` attempts just produced), producer and sink topic."""
    source, sink = await _relay_topics(env, tag)
    await produce(env.bootstrap, source, attempts(n, 10_000), n, f"{tag}: load")
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=env.bootstrap,
        group_id=f"{source}-relay",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with started_producer(env.bootstrap) as producer:
            yield consumer, producer, sink
    finally:
        await consumer.stop()


async def _relay(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, sink: str, at_least: int) -> int:
    """Relays batches of up to 2,000 until `at_least` messages went; returns how many went."""
    relayed = 0
    while relayed < at_least:
        batch = await consumer.getmany(timeout_ms=200, max_records=2000)
        records = [r for rs in batch.values() for r in rs]
        await asyncio.gather(*[await producer.send(sink, value=r.value, key=r.key) for r in records])
        if records:
            await consumer.commit()
        relayed += len(records)
    return relayed


async def upsert_floor(env: BenchEnv, n: int, batch: int = 500) -> float:
    conn = await env.db()
    try:
        await conn.execute("""CREATE TABLE floor_support (meter_number text, provider_id text, status text,
                              at timestamptz, PRIMARY KEY (meter_number, provider_id))""")
        started = time.perf_counter()
        for lo in range(0, n, batch):
            ids = range(lo, min(lo + batch, n))
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO floor_support SELECT * FROM unnest($1::text[], $2::text[], $3::text[],
                       $4::timestamptz[]) ON CONFLICT (meter_number, provider_id) DO UPDATE
                       SET status = excluded.status, at = excluded.at""",
                    [f"06{i:08d}" for i in ids],
                    [PROVIDERS[i % 5] for i in ids],
                    ["supported"] * len(ids),
                    [None] * len(ids),
                )
        return n / (time.perf_counter() - started)
    finally:
        await conn.close()


def faust_version() -> str:
    found = subprocess.run(
        [str(FAUST_PYTHON), "-c", "import faust, uvloop; print(faust.__version__, 'on uvloop', uvloop.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() or "unknown"


async def faust_peer(env: BenchEnv, n: int) -> float:
    if not FAUST_PYTHON.exists():
        raise RuntimeError(f"no faust-streaming virtualenv at {FAUST_PYTHON}: run `make bench`")
    source, sink = await _relay_topics(env, "faust")
    await produce(env.bootstrap, source, attempts(n, 10_000), n, "faust: load")
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; it is waited for outside the loop
        [str(FAUST_PYTHON), str(ROOT / "bench" / "faust_app.py"), "--loop", "uvloop", "worker", "-l", "warn"],
        cwd=ROOT / "bench",
        env=env.env(
            BENCH_FAUST_APP=f"{source}-faust",
            BENCH_SOURCE=source,
            BENCH_SINK=sink,
            BENCH_FAUST_DATADIR=str(ROOT / ".local" / "faust-data"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stamps = await read_until(env.bootstrap, [sink], n, "faust: relayed", within=600)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return steady_rate(stamps)
