"""Records are taken from a real consumer while a batch is applied: in order, a batch's worth at most, and what is
gathered of a partition sought elsewhere is forgotten."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kernel.settings import Settings
from kernel.topics import topic
from tests.harness import eventually
from workers.fetch_ahead import FetchAhead


async def _offsets(ahead: FetchAhead[int], running: asyncio.Future[None], tp: TopicPartition) -> list[int]:
    taken = (await ahead.take(running, 10)).get(tp, [])
    assert all(int(r.value or b"") == decoded for r, decoded in taken), "each record with what decode made of it"
    return [r.offset for r, _ in taken]


async def test_gathers_in_order_up_to_a_batch_and_forgets_what_a_seek_makes_stale(
    settings: Settings, topics: list[str]
) -> None:
    tp = TopicPartition(topic("purchase_attempts").name(settings.topic_prefix), 0)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    running: asyncio.Future[None] | None = None
    try:
        for i in range(25):
            await producer.send(tp.topic, value=b"%d" % i, key=b"k", partition=0)
        await producer.flush()
        consumer.assign([tp])
        consumer.seek(tp, 0)
        ahead = FetchAhead(consumer, max_records=10, decode=lambda r: int(r.value or b""))
        running = asyncio.ensure_future(ahead.run())
        await _full(ahead)
        await asyncio.sleep(0.3)
        assert ahead.count == 10, "no more is taken from the consumer than a batch's worth"
        assert await _offsets(ahead, running, tp) == list(range(10))
        await _full(ahead)
        consumer.seek(tp, 3)  # as a claim or a re-read from the stored offset does
        ahead.forget([tp])
        assert ahead.count == 0
        first = await _offsets(ahead, running, tp)
        assert first and first[0] == 3 and first == list(range(3, 3 + len(first)))
    finally:
        if running is not None:
            running.cancel()
        await consumer.stop()
        await producer.stop()


async def _full(ahead: FetchAhead[int]) -> None:
    async def full() -> bool:
        return ahead.count == ahead.max_records

    await eventually(full, within=10, what="a batch's worth gathered")
