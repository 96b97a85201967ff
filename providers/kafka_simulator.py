"""A provider that integrates natively on our topics: reads its lookup-request topic, answers on the response
topic. Coverage is a regular expression over meter numbers; `silent` never answers (stays Unconfirmed)."""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer

from ppu.topics import topic
from ppu.wiring import started_producer
from schemas.envelope import CONTENT_TYPE
from schemas.lookup import LookupRequested, LookupResponded, LookupRespondedData, UtilityInfo

log = structlog.get_logger()


@dataclass(frozen=True)
class Coverage:
    supports: re.Pattern[str]
    utility_name: str | None = None
    silent: bool = False
    latency_ms: tuple[int, int] = (5, 50)

    def answer(self, request: LookupRequested) -> LookupResponded | None:
        if self.silent:
            return None
        d = request.data
        supported = self.supports.fullmatch(d.meter_number) is not None
        data = LookupRespondedData(
            lookup_id=d.lookup_id,
            provider_id=d.provider_id,
            meter_number=d.meter_number,
            status="supported" if supported else "not_supported",
            responded_at=datetime.now(UTC),
            utility=UtilityInfo(name=self.utility_name) if supported and self.utility_name else None,
        )
        return LookupResponded.new(
            data,
            source=f"provider/{d.provider_id}",
            correlationid=request.correlationid,
            causationid=str(request.id),
        )


async def run_simulator(bootstrap: str, prefix: str, provider_id: str, coverage: Coverage, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        topic("lookup_requests").name(prefix, provider_id=provider_id),
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}provider-sim-{provider_id}",
        auto_offset_reset="latest",
        enable_auto_commit=True,
    )
    responses = topic("lookup_responses").name(prefix)
    await consumer.start()
    try:
        async with started_producer(bootstrap) as producer:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for record in [r for rs in batch.values() for r in rs]:
                    try:
                        request = LookupRequested.model_validate_json(record.value or b"")
                    except ValueError as e:
                        log.warning("unreadable lookup request", error=str(e)[:200])
                        continue
                    answer = coverage.answer(request)
                    if answer is None:
                        continue
                    await asyncio.sleep(random.uniform(*coverage.latency_ms) / 1000)
                    await producer.send_and_wait(
                        responses,
                        value=answer.encode(),
                        key=answer.subject.encode(),
                        headers=[("content-type", CONTENT_TYPE)],
                    )
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
