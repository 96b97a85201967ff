"""The real broker and the real database, round trip."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import AIOKafkaConsumer

from kernel.connections import started_producer
from kernel.settings import Settings
from kernel.topics import topic


async def test_idempotent_producer_round_trips_in_order_per_key(settings: Settings, topics: list[str]) -> None:
    assert settings.kafka_bootstrap_servers is not None
    name = topic("purchase_attempts").name(settings.topic_prefix)
    sent = [(f"M{i % 7}".encode(), f"v{i}".encode()) for i in range(200)]
    async with started_producer(settings.kafka_bootstrap_servers) as producer:
        await asyncio.gather(*[await producer.send(name, value=v, key=k) for k, v in sent])
        # Idempotence is real: the broker handed this producer an id (sequence numbers dedupe retries).
        assert producer._txn_manager is not None and producer._txn_manager.producer_id >= 0
    consumer = AIOKafkaConsumer(
        name,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.topic_prefix}g",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        while len(received) < len(sent):
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            received += [(m.key, m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(sent)
    for key in {k for k, _ in sent}:  # one key, one partition, original order
        assert [v for k, v in received if k == key] == [v for k, v in sent if k == key]


async def test_database_round_trip(db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO institutions VALUES ('i1', 'Bank One')")
    await db.execute("INSERT INTO providers (provider_id, name) VALUES ('p1', 'Alpha')")
    await db.execute("INSERT INTO meters (meter_number) VALUES ('0401000001')")
    await db.execute("INSERT INTO meter_support (meter_number, provider_id) VALUES ('0401000001', 'p1')")
    row = await db.fetchrow("SELECT status, last_response_at FROM meter_support")
    assert row is not None and row["status"] == "unconfirmed" and row["last_response_at"] is None
    bad = None
    try:
        await db.execute("INSERT INTO meters (meter_number) VALUES ('not valid!')")
    except asyncpg.CheckViolationError as e:
        bad = e
    assert bad is not None, "the meter number rule is enforced by the database too"
