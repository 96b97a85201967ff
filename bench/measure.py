"""Producing load and reading results: output rates from the producers' own record timestamps, so every
contender (floor, peer, our flows) is timed the same way, at steady state, without its start-up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from tqdm import tqdm

from kernel.connections import started_producer


async def produce(
    bootstrap: str, topic_name: str, messages: Iterable[tuple[bytes, bytes]], total: int, label: str
) -> None:
    """Sends (key, value) pairs as fast as the idempotent producer takes them."""
    async with started_producer(bootstrap) as producer:
        pending = []
        with tqdm(total=total, desc=label, unit="msg", leave=False) as bar:
            for key, value in messages:
                pending.append(await producer.send(topic_name, value=value, key=key))
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    bar.update(len(pending))
                    pending.clear()
            await asyncio.gather(*pending)
            bar.update(len(pending))


async def paced(
    bootstrap: str, topic_name: str, make: Callable[[], tuple[bytes, bytes, str]], rate: float, seconds: float
) -> dict[str, float]:
    """Sends at `rate` per second for `seconds`; returns correlation id → send time (epoch seconds)."""
    sent: dict[str, float] = {}
    async with started_producer(bootstrap) as producer:
        start = time.monotonic()
        count = int(rate * seconds)
        for i in tqdm(range(count), desc=f"{rate:.0f}/s load", unit="msg", leave=False):
            key, value, corr = make()
            sent[corr] = time.time()
            await producer.send(topic_name, value=value, key=key)
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
    return sent


async def read_until(
    bootstrap: str,
    topics: list[str],
    total: int,
    label: str,
    within: float = 600,
    on_record: Callable[[ConsumerRecord[bytes, bytes], float], None] | None = None,
    ready: asyncio.Event | None = None,
    from_end: bool = False,
) -> list[int]:
    """Reads `total` records from the start of `topics` (`from_end`: from their ends now, records already there left
    out); returns their producer timestamps (ms)."""
    if from_end:
        # No group: assigned and positioned at the end offsets before anything new is produced, so none is missed
        # (a group's "latest" reset happens after joining, when a record may already have come).
        async with started_producer(bootstrap) as producer:  # the public call that waits for a topic's partitions
            parts = [TopicPartition(t, p) for t in topics for p in sorted(await producer.partitions_for(t))]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, max_partition_fetch_bytes=4 << 20)
        await consumer.start()
        consumer.assign(parts)
        for tp, end in (await consumer.end_offsets(parts)).items():
            consumer.seek(tp, end)
    else:
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=f"bench-reader-{uuid.uuid4().hex[:8]}",
            max_partition_fetch_bytes=4 << 20,
        )
        await consumer.start()
    stamps: list[int] = []
    try:
        with tqdm(total=total, desc=label, unit="msg", leave=False) as bar:
            async with asyncio.timeout(within):
                while len(stamps) < total:
                    batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                    if ready is not None and consumer.assignment():
                        ready.set()  # joined its group: a latency clock started now does not count the join
                    now = time.time()
                    for records in batch.values():
                        for r in records:
                            stamps.append(r.timestamp)
                            if on_record is not None:
                                on_record(r, now)
                        bar.update(len(records))
    finally:
        await consumer.stop()
    return stamps


async def joined_reader(
    bootstrap: str,
    topics: list[str],
    total: int,
    label: str,
    within: float = 600,
    on_record: Callable[[ConsumerRecord[bytes, bytes], float], None] | None = None,
    from_end: bool = False,
) -> asyncio.Future[list[int]]:
    """`read_until` started, returned once its consumer has joined (or been assigned its partitions): a clock started
    after this does not count the join."""
    joined = asyncio.Event()
    reader = asyncio.ensure_future(
        read_until(bootstrap, topics, total, label, within, on_record, ready=joined, from_end=from_end)
    )
    await asyncio.wait_for(joined.wait(), 60)
    return reader


def steady_rate(stamps: list[int]) -> float:
    """Messages per second between the 5th and 95th percentile output times (start-up and tail excluded)."""
    s = sorted(stamps)
    lo, hi = s[len(s) // 20], s[len(s) * 19 // 20]
    span = (hi - lo) / 1000
    return (len(s) * 0.9) / span if span > 0 else float("inf")


def percentiles(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    return {f"p{p}": v[min(len(v) - 1, int(len(v) * p / 100))] for p in (50, 95, 99)}
