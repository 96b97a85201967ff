"""The HTTP bridge under test: a simulated provider over real HTTP, the bridge against it, and reading back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from kernel.settings import Settings
from kernel.topics import topic
from providers.bridge_worker import run_bridge
from providers.http_simulator import SimulatorConfig, create_simulator
from schemas.lookup import LookupRequested, LookupRequestedData
from tests.console_server import serve_app
from tests.harness import System

USER, PASSWORD = "bridge", "sim-secret-123"
CREDENTIALS_ENV = "PPU_TEST_P1_CREDENTIALS"


def simulator(
    config: SimulatorConfig, tls: tuple[str, str] | None = None
) -> contextlib.AbstractAsyncContextManager[str]:
    return serve_app(create_simulator(config), log_level="critical", tls=tls)


@contextlib.asynccontextmanager
async def bridge(
    settings: Settings,
    db: asyncpg.Connection,
    base: str,
    call_seconds: float = 2.0,
    max_in_flight: int = 4,
    credentials: str | None = CREDENTIALS_ENV,
    ca_file: str | None = None,
) -> AsyncIterator[None]:
    await db.execute(
        """UPDATE providers SET integration_mode = 'http', base_url = $1, credentials_ref = $2, timeout_ms = $3,
                  max_in_flight = $4, ca_file = $5 WHERE provider_id = 'p1'""",
        base,
        credentials,
        int(call_seconds * 1000),
        max_in_flight,
        ca_file,
    )
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_bridge(settings, "p1", stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def lookup(
    meter: str,
    deadline_s: float = 20,
    lookup_id: uuid.UUID | None = None,
    institution: str | None = "i1",
    utility: str | None = None,
    provider: str = "p1",
) -> LookupRequested:
    data = LookupRequestedData(
        lookup_id=lookup_id or uuid.uuid4(),
        round_id=uuid.uuid4(),
        meter_number=meter,
        provider_id=provider,
        reason="first_seen",
        institution_id=institution,
        utility_name=utility,
        deadline=datetime.now(UTC) + timedelta(seconds=deadline_s),
    )
    return LookupRequested.new(data, source="test", correlationid="c")


async def read(settings: Settings, topic_name: str, count: int, within: float = 30) -> list[tuple[bytes, list]]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic_name,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    got: list[tuple[bytes, list]] = []  # type: ignore[type-arg]
    try:
        async with asyncio.timeout(within):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=200)
                got += [(r.value or b"", list(r.headers)) for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return got


def responses_topic(settings: Settings) -> str:
    return topic("lookup_responses").name(settings.topic_prefix)


def dlq_topic(settings: Settings) -> str:
    return topic("lookup_requests_dlq").name(settings.topic_prefix, provider_id="p1")


async def send_request(system: System, settings: Settings, event: LookupRequested) -> None:
    await system.producer.send_and_wait(
        topic("lookup_requests").name(settings.topic_prefix, provider_id="p1"),
        value=event.encode(),
        key=event.subject.encode(),
    )


GROUP = "ppu-provider-bridge-p1"


async def committed_all(settings: Settings, group_suffix: str) -> bool:
    """Has the bridge's group committed every lookup request (answered, or given up at its deadline)?"""
    group = settings.topic_prefix + group_suffix
    name = topic("lookup_requests").name(settings.topic_prefix, provider_id="p1")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        # From topics.yaml: a consumer that subscribes to nothing knows no partitions of the topic.
        partitions = [TopicPartition(name, p) for p in range(topic("lookup_requests").partitions)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in partitions}
        # Not vacuous: the topic's partitions are known and hold records.
        return bool(partitions) and sum(ends.values()) > 0 and committed == ends
    finally:
        await consumer.stop()
