"""The Kafka-native provider simulator answers a request published before it first joined its group: `ppu run`'s
showcase sends its purchase attempts while the simulators are still joining, and a skipped request left the round
waiting for its deadline (a fresh clone's `make test` once timed out on it)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer

from kernel.connections import started_producer
from kernel.settings import Settings
from kernel.topics import topic
from providers.kafka_simulator import Coverage, run_simulator
from schemas.lookup import LookupRequested, LookupRequestedData, LookupResponded


async def test_a_request_published_before_the_simulator_started_is_answered(
    settings: Settings, topics: list[str]
) -> None:
    bootstrap, prefix = settings.kafka_bootstrap_servers, settings.topic_prefix
    assert bootstrap is not None
    data = LookupRequestedData(
        lookup_id=uuid.uuid4(),
        round_id=uuid.uuid4(),
        meter_number="0401000002",
        provider_id="p1",
        reason="first_seen",
        deadline=datetime.now(UTC) + timedelta(seconds=60),
    )
    request = LookupRequested.new(data, source="ppu/lookup", correlationid=str(data.round_id))
    async with started_producer(bootstrap) as producer:
        await producer.send_and_wait(
            topic("lookup_requests").name(prefix, provider_id="p1"), request.encode(), key=b"0401000002"
        )
    answers = AIOKafkaConsumer(
        topic("lookup_responses").name(prefix), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    stop = asyncio.Event()
    sim = asyncio.ensure_future(run_simulator(bootstrap, prefix, "p1", Coverage(re.compile(r"0401.*")), stop))
    await answers.start()
    try:
        record = await asyncio.wait_for(answers.getone(), 30)
        answer = LookupResponded.model_validate_json(record.value or b"")
        assert (answer.data.lookup_id, answer.data.status) == (data.lookup_id, "supported")
    finally:
        stop.set()
        await answers.stop()
        await asyncio.wait_for(sim, 30)
