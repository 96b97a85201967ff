"""The runtime never applies records after a gap: a batch that starts past the next offset it expects is left
out and read again (the consumer's position reset can race the claim), unless retention removed the records in
between. Against the real broker and database."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from kernel.connections import create_pool, started_producer
from kernel.settings import Settings
from kernel.topics import topic
from messaging.dead_letters import Failure
from messaging.inbound import Inbound, Item
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from workers.group_progress import NEVER
from workers.registry import consumer_flow
from workers.runtime import ConsumerRuntime
from workers.unit_of_work import UnitOfWork


def record(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", b"{}", None, 1, 2, [])


async def test_a_batch_after_a_gap_is_left_out_unless_retention_removed_the_records(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    assert settings.kafka_bootstrap_servers and settings.database_url
    tp = TopicPartition(topic("purchase_attempts").name(settings.topic_prefix), 0)
    async with started_producer(settings.kafka_bootstrap_servers) as producer:
        for _ in range(3):
            await producer.send_and_wait(tp.topic, b"x", key=b"k", partition=0)
    pool = await create_pool(settings.database_url)
    runtime = ConsumerRuntime(consumer_flow("lookup", settings), settings, pool, settings.kafka_bootstrap_servers)
    runtime.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await runtime.consumer.start()
    try:

        async def kept(first: int, stored: int, start: int | None = None) -> bool:
            if start is not None:
                runtime.transactions.starts[tp] = start
            items: dict[TopicPartition, list[Item]] = {tp: [(record(tp, first), None)]}
            owned = {tp: stored}
            await runtime.transactions._refuse_gaps(items, owned)
            return tp in owned

        assert await kept(first=2, stored=2), "the next record expected"
        assert await kept(first=1, stored=2), "records applied before are skipped later, not a gap"
        assert not await kept(first=3, stored=2), "offset 2 would be skipped"
        assert not await kept(first=1, stored=NEVER, start=0), "never stored: the log starts at 0"
        assert await kept(first=0, stored=NEVER, start=0)
        await _delete_records_before(settings, tp, 2)  # retention: offsets 0 and 1 are gone
        assert await kept(first=2, stored=1), "nothing left to read in between: applied, with an error logged"
    finally:
        await runtime.consumer.stop()
        await pool.close()


async def _delete_records_before(settings: Settings, tp: TopicPartition, offset: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(offset)})
    finally:
        await admin.close()


async def test_a_batch_refused_for_a_gap_leaves_no_inbox_marks_behind(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    """The fence and the inbox are one statement, read before the gap is seen: the refused partition's messages must
    not stay marked as handled, or reading them again from the stored offset would drop them as duplicates."""
    assert settings.kafka_bootstrap_servers and settings.database_url
    name = topic("purchase_attempts").name(settings.topic_prefix)
    gapped, steady = TopicPartition(name, 0), TopicPartition(name, 1)
    pool = await create_pool(settings.database_url)
    runtime, handled = _recording(settings, pool, "responses")  # a flow that keeps the inbox
    try:
        await runtime.transactions.progress.claim(pool, [gapped, steady])
        await db.execute("UPDATE consumer_offsets SET next_offset = 2 WHERE topic = $1", name)
        late, on_time = attempt(), attempt()
        # Offset 3 where 2 is expected: a gap (the retention check asks the broker: the records are all there).
        runtime.transactions.log_starts = _log_starts_at_zero
        nexts, applied, _ = await runtime.transactions.apply(
            {gapped: [(record(gapped, 3), late)], steady: [(record(steady, 2), on_time)]}
        )
        assert nexts == {steady: 3} and applied == 1 and handled == [on_time.id]
        marked = {r["message_id"] for r in await db.fetch("SELECT message_id FROM inbox")}
        assert on_time.id in marked and late.id not in marked
        # Read again from the stored offset: the message is applied, not dropped as seen.
        nexts, applied, _ = await runtime.transactions.apply(
            {gapped: [(record(gapped, 2), attempt()), (record(gapped, 3), late)]}
        )
        assert nexts == {gapped: 4} and applied == 2 and late.id in handled
    finally:
        await pool.close()


async def _log_starts_at_zero(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    return dict.fromkeys(partitions, 0)


def attempt() -> PurchaseAttempted:
    data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number="04010000001", institution_id="i1")
    return PurchaseAttempted.new(data, source="test", correlationid=str(data.attempt_id))


async def test_records_from_before_the_stored_offset_never_move_it_back(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    """Records fetched from an earlier position and delivered after the claim's seek are applied before: skipped,
    and the stored offset stays where it was (moved back, nothing later would move it on once the log is read)."""
    assert settings.kafka_bootstrap_servers and settings.database_url
    tp = TopicPartition(topic("purchase_attempts").name(settings.topic_prefix), 0)
    pool = await create_pool(settings.database_url)
    runtime, handled = _recording(settings, pool)
    try:
        await runtime.transactions.progress.claim(pool, [tp])
        await db.execute("UPDATE consumer_offsets SET next_offset = 5 WHERE topic = $1", tp.topic)
        nexts, applied, _ = await runtime.transactions.apply(
            {tp: [(record(tp, 1), attempt()), (record(tp, 2), attempt())]}
        )
        assert nexts == {tp: 5} and applied == 0 and handled == []
        assert await db.fetchval("SELECT next_offset FROM consumer_offsets WHERE topic = $1", tp.topic) == 5
    finally:
        await pool.close()


async def test_the_lookup_flow_keeps_no_inbox_but_applies_a_message_once_per_batch(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    """Without the inbox (its attempt ids dedupe: workers/registry.py), a message twice in one batch is still handed
    over once, nothing is marked, and a record that fails to decode is still marked: dead-lettered once."""
    assert settings.kafka_bootstrap_servers and settings.database_url
    tp = TopicPartition(topic("purchase_attempts").name(settings.topic_prefix), 0)
    pool = await create_pool(settings.database_url)
    runtime, handled = _recording(settings, pool)
    letters: list[int] = []

    async def dead_letter(rec: ConsumerRecord[bytes, bytes], failure: Failure) -> None:
        letters.append(rec.offset)

    runtime.transactions.dead_letter = dead_letter
    try:
        await runtime.transactions.progress.claim(pool, [tp])
        once, poison = attempt(), Failure("decode", "NotJson", "x")
        items: list[Item] = [(record(tp, 0), once), (record(tp, 1), once), (record(tp, 2), poison)]
        nexts, count, _ = await runtime.transactions.apply({tp: items})
        assert nexts == {tp: 3} and count == 1 and handled == [once.id] and letters == [2]
        marked = [r["message_id"] for r in await db.fetch("SELECT message_id FROM inbox")]
        assert len(marked) == 1 and once.id not in marked, "only the letter's mark"
    finally:
        await pool.close()


def _recording(
    settings: Settings, pool: asyncpg.Pool, worker: str = "lookup"
) -> tuple[ConsumerRuntime, list[uuid.UUID]]:
    """A runtime of `worker`'s flow whose handler only records the ids of the messages it is handed."""
    assert settings.kafka_bootstrap_servers
    runtime = ConsumerRuntime(consumer_flow(worker, settings), settings, pool, settings.kafka_bootstrap_servers)
    handled: list[uuid.UUID] = []

    async def handler(batch: list[Inbound[Any]], work: UnitOfWork) -> None:
        handled.extend(m.event.id for m in batch)

    runtime.transactions.handler = handler
    return runtime, handled
