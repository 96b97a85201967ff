"""Bad input goes to the dead-letter topic, with its raw bytes and headers, and the partition keeps moving."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from kernel.settings import Settings
from kernel.topics import topic
from schemas.dead_letter import DeadLetterHeaders
from tests.harness import System, eventually, running, seed_reference


@pytest.fixture
async def system(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[System]:
    await seed_reference(db)
    async with running(settings.model_copy(update={"round_deadline_seconds": 2.0})) as s:
        yield s


async def dead_letters(settings: Settings, topic_key: str, count: int) -> list[tuple[bytes, DeadLetterHeaders]]:
    consumer = AIOKafkaConsumer(
        topic(topic_key).name(settings.topic_prefix),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"{settings.topic_prefix}dlq-reader",
    )
    await consumer.start()
    got: list[tuple[bytes, DeadLetterHeaders]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=300)
                got += [
                    (r.value or b"", DeadLetterHeaders.from_headers(list(r.headers)))
                    for rs in batch.values()
                    for r in rs
                ]
        extra = await consumer.getmany(timeout_ms=1000)  # and nothing more than expected
        assert not extra, f"unexpected extra dead letters: {extra}"
    finally:
        await consumer.stop()
    return got


async def test_poison_purchase_attempts_are_dead_lettered_and_good_ones_flow(
    system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    meter = "0401000010"
    good = await system.attempt(meter, send=False)
    valid = json.loads(good.encode())
    unknown_version = {**valid, "schemaversion": 2, "id": str(uuid.uuid4())}
    schema_invalid = {**valid, "id": str(uuid.uuid4()), "data": {**valid["data"], "meter_number": "bad meter!"}}
    poison = {
        b"\x00\xff\xfe random bytes": "decode",
        b'{"specversion": "1.0", "id": "trunc': "decode",
        json.dumps(schema_invalid).encode(): "validate",
        json.dumps(unknown_version).encode(): "validate",
        json.dumps({**valid, "padding": "x" * 100_000}).encode(): "decode",
    }
    for raw in poison:
        await system.publish("purchase_attempts", raw, meter)  # same key: same partition as the good one
    await system.send("purchase_attempts", good)
    await eventually(
        lambda: db.fetchval("SELECT count(*) FROM purchase_attempts WHERE attempt_id = $1", good.data.attempt_id),
        what="the good attempt to be applied",
    )
    letters = await dead_letters(settings, "purchase_attempts_dlq", len(poison))
    assert sorted(raw for raw, _ in letters) == sorted(poison)
    for raw, headers in letters:
        assert headers.stage == poison[raw]
        assert headers.original_topic == topic("purchase_attempts").name(settings.topic_prefix)
        assert headers.consumer_group.endswith("ppu-lookup-worker") and headers.error_message
        assert headers.original_offset >= 0 and headers.original_timestamp > 0
    by_error = {h.error_class for _, h in letters}
    assert {"MessageTooLarge", "SchemaViolation"} <= by_error


async def test_responses_for_unknown_lookups_or_wrong_providers_are_dead_lettered(
    system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    meter = "0401000011"
    await system.attempt(meter)
    request = (await system.requests("p1", 1))[0]
    stranger = system.answer(request, "supported")
    stranger = stranger.model_copy(update={"data": stranger.data.model_copy(update={"provider_id": "p9"})})
    unknown = system.answer(request, "supported")
    unknown = unknown.model_copy(update={"data": unknown.data.model_copy(update={"lookup_id": uuid.uuid4()})})
    await system.send("lookup_responses", stranger)
    await system.send("lookup_responses", unknown)
    await system.respond(request, "supported")
    await eventually(
        lambda: db.fetchval(
            "SELECT status = 'supported' FROM meter_support WHERE meter_number = $1 AND provider_id = 'p1'", meter
        ),
        what="the real answer",
    )
    letters = await dead_letters(settings, "lookup_responses_dlq", 2)
    reasons = sorted(h.error_message for _, h in letters)
    assert all(h.stage == "apply" and h.error_class == "Rejected" for _, h in letters)
    assert "not to p9" in reasons[0] or "not to p9" in reasons[1]
    assert any(r.startswith("unknown lookup id") for r in reasons)
    assert await db.fetchval("SELECT count(*) FROM meter_support WHERE provider_id NOT IN ('p1', 'p2', 'p3')") == 0


async def test_an_unwritable_dead_letter_topic_stops_only_its_partition_and_says_so(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    from aiokafka.admin import NewTopic

    from infra.processes import free_port
    from infra.topic_admin import admin_client

    await seed_reference(db)
    dlq = topic("purchase_attempts_dlq").name(settings.topic_prefix)
    assert settings.kafka_bootstrap_servers is not None
    async with admin_client(settings.kafka_bootstrap_servers) as client:
        await client.delete_topics([dlq])

        async def deleted() -> bool:  # deletion completes after the call returns; a write before then is kept
            return dlq not in await client.list_topics()

        await eventually(deleted, what="the dead-letter topic to be gone")
        await eventually(lambda: _absent_from_metadata(settings, dlq), what="the topic gone from a client's metadata")
    port = free_port()
    async with running(settings.model_copy(update={"metrics_port": port})) as system:
        good = await system.attempt("0401000012", send=False)
        poisoned = (await system.publish_to("purchase_attempts", b"not json at all", "0401000012")).partition
        await system.send("purchase_attempts", good)
        elsewhere = []  # attempts on the other partitions: they must flow
        for n in range(40):
            other = await system.attempt(f"04020{n:05d}", send=False)
            if (await system.publish_to("purchase_attempts", other.encode(), other.subject)).partition != poisoned:
                elsewhere.append(other.data.attempt_id)
        assert elsewhere
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) = $1 FROM purchase_attempts WHERE attempt_id = ANY($2::uuid[])",
                len(elsewhere),
                elsewhere,
            ),
            within=60,
            what="the other partitions to keep flowing",
        )
        health = await _healthz(port)
        assert health[0] == 503 and health[1]["stopped"][0]["partition"] == poisoned, health
        assert "dead-letter" in health[1]["stopped"][0]["reason"]
        assert (
            await db.fetchval("SELECT count(*) FROM purchase_attempts WHERE attempt_id = $1", good.data.attempt_id) == 0
        ), "nothing past the poison message on its partition"
        async with admin_client(settings.kafka_bootstrap_servers) as client:
            spec = topic("purchase_attempts_dlq")
            await client.create_topics([NewTopic(dlq, spec.partitions, 1, topic_configs=spec.kafka_configs())])
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM purchase_attempts WHERE attempt_id = $1", good.data.attempt_id),
            within=90,
            what="the partition to move on",
        )
        assert (await _healthz(port))[0] == 200, "moving again: alive"
    letters = await dead_letters(settings, "purchase_attempts_dlq", 1)
    assert letters[0][0] == b"not json at all" and letters[0][1].stage == "decode"


async def _healthz(port: int) -> tuple[int, Any]:
    import httpx

    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{port}/healthz")
    return r.status_code, r.json()


async def _absent_from_metadata(settings: Settings, name: str) -> bool:
    """What a producer sees (its metadata request), not only the controller's answer to the admin client."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        return name not in await consumer.topics()
    finally:
        await consumer.stop()
