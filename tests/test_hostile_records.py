"""Hostile records: one as large as the broker takes cannot wedge a worker; its dead letter always fits."""

from __future__ import annotations

import hashlib
import os

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord

from kernel.settings import Settings
from kernel.topics import topic
from messaging.dead_letters import FRAMING, RECORD_LIMIT, fitted
from schemas.dead_letter import DeadLetterHeaders
from tests.harness import eventually, running, seed_reference
from tests.test_dead_letters import dead_letters

OURS = DeadLetterHeaders(
    original_topic="t",
    original_partition=0,
    original_offset=7,
    original_timestamp=1,
    consumer_group="g",
    stage="decode",
    error_class="MessageTooLarge",
    error_message="x" * 1000,
).to_headers()


def _record(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", 0, 7, 1, 0, b"0401000001", value, None, len(b"0401000001"), len(value), headers or [])


def _weight(value: bytes, headers: list[tuple[str, bytes]]) -> int:
    return len(value) + sum(len(k) + len(v) for k, v in headers) + len(b"0401000001") + FRAMING


def test_a_small_value_is_kept_whole() -> None:
    value, headers = fitted(_record(b"{}", [("content-type", b"application/json")]), OURS)
    assert value == b"{}" and headers == [("content-type", b"application/json"), *OURS]


def test_a_value_past_the_limit_is_cut_and_marked_with_its_hash_and_length() -> None:
    big = os.urandom(1_048_400)
    value, headers = fitted(_record(big), OURS)
    marks = dict(headers)
    assert _weight(value, headers) <= RECORD_LIMIT
    assert big.startswith(value) and len(value) > RECORD_LIMIT - 10_000, "as much of the value as fits"
    assert marks["dlq_truncated"] == b"true"
    assert marks["dlq_value_length"] == str(len(big)).encode()
    assert marks["dlq_value_sha256"] == hashlib.sha256(big).hexdigest().encode()
    assert DeadLetterHeaders.from_headers(headers).original_offset == 7, "where to read the whole bytes"


def test_inflated_headers_are_counted_not_kept() -> None:
    inflated = [(f"h{i}", os.urandom(10_000)) for i in range(90)]
    value, headers = fitted(_record(b"{}", inflated), OURS)
    assert _weight(value, headers) <= RECORD_LIMIT and value == b"{}"
    assert ("dlq_original_headers_dropped", b"90") in headers


async def test_a_record_as_large_as_the_broker_takes_is_dead_lettered_once_and_the_flow_goes_on(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    big = os.urandom(1_048_400)
    async with running(settings) as s:
        attacker = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=2_000_000)
        await attacker.start()
        try:
            sent = await attacker.send_and_wait(
                topic("purchase_attempts").name(settings.topic_prefix), value=big, key=b"0401000077"
            )
        finally:
            await attacker.stop()
        after = await s.attempt("0401000077")  # the same key: the same partition, behind the big record
        others = [await s.attempt(f"04030{n:05d}") for n in range(12)]
        wanted = [after.data.attempt_id, *(o.data.attempt_id for o in others)]
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) = $1 FROM purchase_attempts WHERE attempt_id = ANY($2::uuid[])", len(wanted), wanted
            ),
            within=60,
            what="every good attempt taken in, the big record's partition too",
        )
    letters = await dead_letters(settings, "purchase_attempts_dlq", 1)
    value, headers = letters[0]
    assert len(letters) == 1 and headers.original_offset == sent.offset and headers.error_class == "MessageTooLarge"
    assert big.startswith(value) and len(value) < len(big) and headers.truncated
    assert headers.value_length == len(big) and headers.value_sha256 == hashlib.sha256(big).hexdigest()
