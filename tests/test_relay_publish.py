"""The relay's own record batches (workers/relay_publish.py), on a real broker: every record where aiokafka's `send`
(the Java client's partitioner) would put its key, in order per partition, with its headers, also when a cycle
overflows a batch."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from kernel.connections import started_producer
from kernel.settings import Settings
from kernel.topics import topic
from workers.relay_publish import publish


def _bootstrap(settings: Settings) -> str:
    assert settings.kafka_bootstrap_servers is not None
    return settings.kafka_bootstrap_servers


async def _read_all(settings: Settings, name: str, n: int) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(
        name, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]] = []
        async with asyncio.timeout(30):
            while len(got) < n:
                for _, records in (await consumer.getmany(timeout_ms=500)).items():
                    got += [(r.partition, r.key, r.value, list(r.headers)) for r in records]
        return got
    finally:
        await consumer.stop()


async def test_records_land_where_send_puts_their_keys_in_order_with_headers(
    settings: Settings, topics: list[str]
) -> None:
    ours = topic("routing_decisions").name(settings.topic_prefix)
    theirs = topic("meter_events").name(settings.topic_prefix)  # the same partition count, written by `send`
    keys = [b"%010d" % (i % 37) for i in range(600)]
    # A batch of 4 KB holds a few dozen of these: the cycle overflows several times per partition.
    async with started_producer(_bootstrap(settings), max_batch_size=4096) as producer:
        await publish(producer, [(ours, k, b"%d:" % i + b"x" * 100, [("n", b"%d" % i)]) for i, k in enumerate(keys)])
        await asyncio.gather(*[await producer.send(theirs, key=k, value=b"") for k in sorted(set(keys))])
    published = await _read_all(settings, ours, len(keys))
    expected = {key: partition for partition, key, _, _ in await _read_all(settings, theirs, len(set(keys)))}

    assert len(published) == len(keys), "every record once"
    assert {key: partition for partition, key, _, _ in published} == expected, "each key where `send` puts it"
    assert len({p for p, _, _, _ in published}) > 1
    order: dict[int, list[int]] = {}
    for partition, _, value, headers in published:
        n = int(value.split(b":")[0])
        assert headers == [("n", b"%d" % n)]
        order.setdefault(partition, []).append(n)
    assert all(ns == sorted(ns) for ns in order.values()), "in the order given, per partition"


async def test_a_failed_send_is_raised(settings: Settings, topics: list[str]) -> None:
    """A record the broker refuses (bigger than the topic allows) fails the call: the relay's delete rolls back."""
    name = topic("routing_decisions").name(settings.topic_prefix)
    async with started_producer(_bootstrap(settings)) as producer:
        try:
            await publish(producer, [(name, b"k", b"x" * 3_000_000, [])])
        except Exception as e:
            assert "Size" in type(e).__name__ or "size" in str(e).lower(), repr(e)
        else:
            raise AssertionError("a record over the broker's limit was acknowledged")
