"""Dead-lettering: the original bytes and headers, plus headers that say where the record came from and why."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from ppu.wiring import producer
from schemas.dead_letter import DeadLetterHeaders
from workers import metrics

log = structlog.get_logger()


@dataclass(frozen=True)
class Failure:
    stage: str  # decode, validate or apply
    error_class: str
    message: str
    provider_error: str | None = None  # the HTTP bridge: the provider's ErrorDetail as sent (JSON)


class DeadLetterUnavailable(Exception):
    """The dead-letter write was not acknowledged: the partition must not move past the record."""


class DeadLetterer:
    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.group_id = group_id
        self.producer: AIOKafkaProducer = producer(bootstrap)
        self.started = False

    async def start(self) -> None:
        await self.producer.start()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            await self.producer.stop()

    async def send(self, dlq_topic: str, record: ConsumerRecord[bytes, bytes], failure: Failure) -> None:
        headers = DeadLetterHeaders(
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_timestamp=record.timestamp,
            consumer_group=self.group_id,
            stage=failure.stage,
            error_class=failure.error_class,
            error_message=failure.message[:1000],
            provider_error=failure.provider_error[:16000] if failure.provider_error else None,
        )
        try:
            await self.producer.send_and_wait(
                dlq_topic,
                value=record.value or b"",
                key=record.key,
                headers=[*list(record.headers or ()), *headers.to_headers()],
            )
        except KafkaError as e:
            raise DeadLetterUnavailable(f"dead-letter write to {dlq_topic} failed: {e}") from e
        metrics.DEAD_LETTERS.labels(self.group_id, failure.stage).inc()
        log.warning(
            "dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            stage=failure.stage,
            error_class=failure.error_class,
            error=failure.message[:200],
        )
