"""Dead-lettering: the original bytes and headers, plus headers that say where the record came from and why.

A dead-letter record always fits: when the original value and headers would pass the producer's request limit,
the record keeps the `dlq_*` headers (with the original topic, partition and offset, so the bytes can still be
read at the source while retention keeps them), the value's SHA-256 and length, and as much of the value as
fits, marked truncated. A write refused for a permanent reason (authorization, an invalid topic) is not retried
as if the broker were away: it raises DeadLetterRefused, and the caller stops that one partition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from kernel.connections import producer
from messaging import metrics
from schemas.dead_letter import DeadLetterHeaders

log = structlog.get_logger()

# What one dead-letter record may weigh: under the producer's max_request_size (1 MiB) and the topic's
# max.message.bytes, with room for the record batch's own framing.
RECORD_LIMIT = 1_000_000
FRAMING = 4_096


@dataclass(frozen=True)
class Failure:
    stage: str  # decode, validate or apply
    error_class: str
    message: str
    provider_error: str | None = None  # the HTTP bridge: the provider's ErrorDetail as sent (JSON)


class DeadLetterFailed(Exception):
    """The dead-letter write of `record` was not acknowledged: its partition must not move past it."""

    def __init__(self, message: str, record: ConsumerRecord[bytes, bytes]) -> None:
        super().__init__(message)
        self.record = record


class DeadLetterUnavailable(DeadLetterFailed):
    """The broker is away or slow: worth trying again."""


class DeadLetterRefused(DeadLetterFailed):
    """The broker refused the write for good (authorization, invalid topic): retrying soon cannot help."""


def _size(headers: list[tuple[str, bytes]]) -> int:
    return sum(len(k) + len(v) for k, v in headers)


def fitted(
    record: ConsumerRecord[bytes, bytes], ours: list[tuple[str, bytes]], limit: int = RECORD_LIMIT
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The dead letter's value and headers, within `limit` bytes in all."""
    value, original = record.value or b"", list(record.headers or ())
    budget = limit - FRAMING - len(record.key or b"") - _size(ours)
    if _size(original) > budget // 2:  # headers an attacker inflated: keep ours, count theirs
        original = [("dlq_original_headers_dropped", str(len(original)).encode())]
    room = budget - _size(original)
    if len(value) <= room:
        return value, [*original, *ours]
    marks = [
        ("dlq_truncated", b"true"),
        ("dlq_value_length", str(len(value)).encode()),
        ("dlq_value_sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    return value[: max(room - _size(marks), 0)], [*original, *ours, *marks]


class DeadLetterer:
    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.group_id, self.bootstrap = group_id, bootstrap
        self.producer: AIOKafkaProducer | None = None  # made at start: one never started is never left unclosed

    async def start(self) -> None:
        # A dead-letter topic that is gone shows as a metadata wait: bounded at 10 s, so that the batch holding
        # the record sets its partition aside soon and the others flow on.
        self.producer = producer(self.bootstrap, request_timeout_ms=10000)
        try:
            await self.producer.start()
        except BaseException:
            await self.producer.stop()  # a failed start leaves connections open otherwise
            self.producer = None
            raise

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def send(self, dlq_topic: str, record: ConsumerRecord[bytes, bytes], failure: Failure) -> None:
        if self.producer is None:
            raise DeadLetterUnavailable(f"dead-letter write to {dlq_topic}: the producer is not started", record)
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
        value, all_headers = fitted(record, headers.to_headers())
        try:
            await self.producer.send_and_wait(dlq_topic, value=value, key=record.key, headers=all_headers)
        except (KafkaConnectionError, KafkaTimeoutError) as e:
            raise DeadLetterUnavailable(f"dead-letter write to {dlq_topic} failed: {e!r}", record) from e
        except KafkaError as e:
            kind = DeadLetterUnavailable if e.retriable else DeadLetterRefused
            raise kind(f"dead-letter write to {dlq_topic} failed: {type(e).__name__}: {e}", record) from e
        metrics.DEAD_LETTERS.labels(self.group_id, failure.stage).inc()
        log.warning(
            "dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            stage=failure.stage,
            error_class=failure.error_class,
            error=failure.message[:200],
            truncated=len(value) < len(record.value or b""),
        )
