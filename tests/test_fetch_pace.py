"""An idle consumer fetches as Kafka does by default (answered at the first record), a busy one as configured (held
for a batch's worth): against the real broker, so a change in aiokafka that ignores the pace fails here."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from kernel.connections import started_producer
from kernel.settings import Settings
from kernel.topics import topic
from messaging.fetch_pace import IDLE_MIN_BYTES, IDLE_WAIT_MS, FetchPace
from workers.fetch_ahead import FetchAhead

BUSY_WAIT_MS = 4000  # far longer than the test waits for a record: a record taken sooner was fetched idle-paced


async def test_an_idle_consumer_takes_the_first_record_at_once_then_fetches_as_configured(
    settings: Settings, topics: list[str]
) -> None:
    assert settings.kafka_bootstrap_servers
    tp = TopicPartition(topic("purchase_attempts").name(settings.topic_prefix), 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, fetch_max_wait_ms=BUSY_WAIT_MS, fetch_min_bytes=1 << 20
    )
    await consumer.start()
    consumer.assign([tp])
    pace = FetchPace(consumer)
    ahead = FetchAhead[bytes | None](consumer, 100, lambda rec: rec.value, pace, idle_after_ms=100)
    fetching = asyncio.ensure_future(ahead.run())
    try:
        await asyncio.sleep(0.5)
        assert not pace.busy, "nothing for the idle interval: idle"
        # The fetch in flight when the pace turned idle was made busy: it ends by its wait, the next one is idle.
        await asyncio.sleep(BUSY_WAIT_MS / 1000 + 0.5)
        async with started_producer(settings.kafka_bootstrap_servers) as producer:
            sent = time.monotonic()
            await producer.send_and_wait(tp.topic, b"first", key=b"k", partition=0)
            taken = await ahead.take(fetching, timeout_s=BUSY_WAIT_MS / 1000 - 1)
            waited = time.monotonic() - sent
        assert [v for _, v in taken.get(tp, [])] == [b"first"], f"not taken within {waited:.1f} s: held as busy"
        assert pace.busy, "a record came: busy again"
        fetcher = consumer._fetcher
        assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (BUSY_WAIT_MS, 1 << 20)
        pace.traffic(0)
        assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (IDLE_WAIT_MS, IDLE_MIN_BYTES)
    finally:
        fetching.cancel()
        await consumer.stop()


def test_without_aiokafka_s_private_fetcher_the_pace_changes_nothing() -> None:
    class _Other:  # another aiokafka: no `_fetcher`
        pass

    pace = FetchPace(_Other())
    pace.traffic(0)
    pace.traffic(5)
    assert pace.busy
