"""The hot path leaves nothing for the cycle collector. Workers collect the young generation only every 50,000
allocations (workers/process.py), which is cheap only while batches make no reference cycles: retry state left
~35 cyclic objects per batch, and every ~1,400 batches a collection freed them all at once, a 20-60 ms stop that
set the lookup p99 at 1,000 attempts/s. Batches are applied here as the consume loop applies them (retry wrapper,
transaction, lookup handler, outbox), against the real broker and database, and the garbage is counted."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from kernel.connections import create_pool
from kernel.settings import Settings
from kernel.topics import topic
from messaging.inbound import Item, decode
from messaging.retrying import retry_until_stopped
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from tests.harness import seed_reference, supported_meters
from workers.registry import consumer_flow
from workers.runtime import ConsumerRuntime

BATCHES, PER_BATCH = 30, 10


@contextmanager
def cyclic_garbage() -> Iterator[list[int]]:
    """Counts the objects that only the cycle collector could free, made inside the block."""
    found: list[int] = []
    gc.collect()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.append(len(gc.garbage))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        gc.enable()


async def test_a_retry_that_succeeds_at_once_leaves_no_cycles() -> None:
    async def ok() -> int:
        return 1

    stop = asyncio.Event()
    with cyclic_garbage() as found:
        for _ in range(200):
            assert await retry_until_stopped(stop, ok) == 1
    assert found[0] < 10, f"{found[0]} cyclic objects after 200 calls"


async def test_a_failed_first_try_is_retried_and_a_stop_ends_the_retries() -> None:
    calls = 0

    async def fails_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database restarting")
        return "applied"

    assert await retry_until_stopped(asyncio.Event(), fails_once) == "applied"
    assert calls == 2

    stopped = asyncio.Event()
    stopped.set()

    async def always_down() -> str:
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        await retry_until_stopped(stopped, always_down)


def _batch(tp: TopicPartition, first: int) -> list[Item]:
    items: list[Item] = []
    for offset in range(first, first + PER_BATCH):
        meter = f"07{offset % 50:08d}"
        value = PurchaseAttempted.new(
            PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=meter, institution_id="i1"),
            source="test",
            correlationid=str(offset),
        ).encode()
        rec = ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, meter.encode(), value, None, 10, len(value), [])
        items.append((rec, decode(rec, PurchaseAttempted, 100_000)))
    return items


async def test_lookup_batches_leave_no_cycles(settings: Settings, topics: list[str], db: asyncpg.Connection) -> None:
    assert settings.kafka_bootstrap_servers and settings.database_url
    await seed_reference(db)
    await supported_meters(db, "07", 50)
    tp = TopicPartition(topic("purchase_attempts").name(settings.topic_prefix), 0)
    pool = await create_pool(settings.database_url)
    runtime = ConsumerRuntime(consumer_flow("lookup", settings), settings, pool, settings.kafka_bootstrap_servers)
    stop = asyncio.Event()
    try:
        await runtime.progress.claim(pool, [tp])
        runtime.transactions.starts[tp] = 0
        for b in range(3):  # caches filled, statements prepared
            await runtime._apply_flowing({tp: _batch(tp, b * PER_BATCH)}, stop)
        with cyclic_garbage() as found:
            for b in range(3, 3 + BATCHES):
                stored = await runtime._apply_flowing({tp: _batch(tp, b * PER_BATCH)}, stop)
                assert stored == {tp: (b + 1) * PER_BATCH}
        decided = await db.fetchval("SELECT count(*) FROM routing_decisions")
        assert decided == (3 + BATCHES) * PER_BATCH, "every attempt decided"
        assert found[0] < BATCHES, f"{found[0]} cyclic objects over {BATCHES} batches"
    finally:
        await pool.close()
