"""A provider that integrates natively on our topics: reads its lookup-request topic, answers on the response
topic. Coverage is a regular expression over meter numbers; `silent` never answers (stays Unconfirmed).

Answers are concurrent, each after its own random latency, so a latency range wider than the round deadline
gives late answers to old rounds, and answers overtake each other as a real provider's do. For fault tests it
can also send every answer several times and replace a share of them with garbage."""

from __future__ import annotations

import asyncio
import os
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kernel import tracing
from kernel.connections import started_producer
from kernel.topics import topic
from schemas.envelope import CONTENT_TYPE
from schemas.lookup import LookupRequested, LookupResponded, LookupRespondedData, UtilityInfo

log = structlog.get_logger()


@dataclass(frozen=True)
class Coverage:
    supports: re.Pattern[str]
    utility_name: str | None = None
    silent: bool = False
    latency_ms: tuple[float, float] = (5, 50)  # uniform between the two
    copies: int = 1  # every answer sent this many times (a provider that retries its own sends)
    garbage_rate: float = 0.0  # share of answers replaced by bytes no decoder accepts
    clock_offset_s: float = 0.0  # how far its clock is from true time (a provider host whose clock is off)

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
            responded_at=datetime.now(UTC) + timedelta(seconds=self.clock_offset_s),
            utility=UtilityInfo(name=self.utility_name) if supported and self.utility_name else None,
        )
        return LookupResponded.new(
            data,
            source=f"provider/{d.provider_id}",
            correlationid=request.correlationid,
            causationid=str(request.id),
        )


def garbage(answer: LookupResponded) -> bytes:
    """Unique unreadable bytes of one of three kinds, so each can be found exactly once on the dead-letter topic."""
    encoded = answer.encode()
    return random.choice(
        [
            b"\xff\xfe" + os.urandom(24),  # not UTF-8 at all
            encoded[: len(encoded) // 2],  # truncated JSON
            encoded.replace(b'"status":"', b'"status":"maybe-'),  # well-formed, schema-invalid
        ]
    )


async def run_simulator(
    bootstrap: str,
    prefix: str,
    provider_id: str,
    coverage: Coverage,
    stop: asyncio.Event,
    sent_garbage: list[bytes] | None = None,
) -> None:
    consumer = AIOKafkaConsumer(
        topic("lookup_requests").name(prefix, provider_id=provider_id),
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}provider-sim-{provider_id}",
        # A provider answers the requests published before its first position was set, as a real one reading its
        # topic must: with "latest", a request sent while the group was joining (`ppu run`'s showcase, at start) was
        # skipped and its round waited for the deadline. Committed offsets keep a restart from answering twice.
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    responses = topic("lookup_responses").name(prefix)
    pending: set[asyncio.Task[None]] = set()

    async def deliver(producer: AIOKafkaProducer, request: LookupRequested, trace: list[tuple[str, bytes]]) -> None:
        await asyncio.sleep(random.uniform(*coverage.latency_ms) / 1000)
        answer = coverage.answer(request)  # stamped when it leaves: a late answer says so
        if answer is None:
            return
        value = answer.encode()
        if random.random() < coverage.garbage_rate:
            value = garbage(answer)
            if sent_garbage is not None:
                sent_garbage.append(value)
        for _ in range(coverage.copies):
            await producer.send_and_wait(
                responses, value=value, key=answer.subject.encode(), headers=[("content-type", CONTENT_TYPE), *trace]
            )

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
                    if not coverage.silent:
                        # A provider answering on Kafka hands the request's trace context back with its answer.
                        trace = [(k, v) for k, v in record.headers if k in tracing.TRACE_HEADERS]
                        task = asyncio.create_task(deliver(producer, request, trace))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
            # Answers already on their way are delivered (bounded), as a provider's in-flight replies would be.
            if pending:
                await asyncio.wait(pending, timeout=coverage.latency_ms[1] / 1000 + 5)
            for task in pending:
                task.cancel()
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
