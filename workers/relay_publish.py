"""How the relay hands a cycle's rows to Kafka: one record batch per partition, built by us.

aiokafka's `send` does per record what a cycle needs once per partition (a partitioner call, the pure-Python
murmur2, a future, the accumulator's bookkeeping): over half the relay's CPU (bench/profiles). `create_batch` and
`send_batch` are its public interface for building the batches ourselves. The partition is the default
partitioner's (murmur2 of the key, as the Java client), so a key lands where `send` would put it; records of one
partition keep their order inside a batch and across batches (the accumulator sends them in order).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

Outgoing = tuple[str, bytes, bytes, Sequence[tuple[str, bytes]]]  # topic, key, value, headers

# A meter's key repeats across a cycle's topics and cycles; its hash need not be computed again.
_key_hash = functools.lru_cache(maxsize=1 << 16)(murmur2)


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """The default partitioner's choice (aiokafka.partitioner.DefaultPartitioner) among the topic's sorted ids."""
    return partitions[int(_key_hash(key) & 0x7FFFFFFF) % len(partitions)]


async def publish(producer: AIOKafkaProducer, records: Sequence[Outgoing]) -> None:
    """Sends the records and waits until every one is acknowledged (acks=all); the first failure is raised."""
    partitions: dict[str, list[int]] = {}
    open_batches: dict[tuple[str, int], Any] = {}  # aiokafka's BatchBuilder (untyped)
    sent: list[asyncio.Future[object]] = []
    for topic, key, value, headers in records:
        ids = partitions.get(topic)
        if ids is None:
            ids = partitions[topic] = sorted(await producer.partitions_for(topic))
        where = (topic, partition_of(key, ids))
        batch = open_batches.get(where)
        if batch is None:
            batch = open_batches[where] = producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
            # Full: it goes now, and a new one takes the record (a batch's first record always fits).
            sent.append(await producer.send_batch(batch, topic, partition=where[1]))
            batch = open_batches[where] = producer.create_batch()
            batch.append(timestamp=None, key=key, value=value, headers=headers)
    for (topic, partition), batch in open_batches.items():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*sent)
