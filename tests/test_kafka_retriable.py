"""Kafka errors that aiokafka flags retriable are waited out everywhere, never a crash: while topics are re-applied
(partitions added, configs changed) under load, every purchase attempt still gets its decision."""

from __future__ import annotations

import asyncio

import aiokafka.errors as kafka_errors
import asyncpg
import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra.topic_admin import admin_client, apply
from kernel.settings import Settings
from kernel.topics import topic
from messaging.retrying import TRANSIENT, retry_until_stopped
from tests.harness import eventually, running, seed_reference, supported_meters


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.NotLeaderForPartitionError,
        kafka_errors.LeaderNotAvailableError,
        kafka_errors.RequestTimedOutError,
        kafka_errors.NotEnoughReplicasError,
        kafka_errors.UnknownTopicOrPartitionError,
        kafka_errors.NotCoordinatorForGroupError,
    ],
)
def test_retriable_kafka_errors_are_transient(error: type[Exception]) -> None:
    assert issubclass(error, TRANSIENT)


@pytest.mark.parametrize(
    "error",
    [kafka_errors.MessageSizeTooLargeError, kafka_errors.TopicAuthorizationFailedError, kafka_errors.InvalidTopicError],
)
def test_permanent_kafka_errors_are_not(error: type[Exception]) -> None:
    assert not issubclass(error, TRANSIENT)


async def test_a_not_leader_error_is_retried_until_it_passes() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise kafka_errors.NotLeaderForPartitionError()
        return "sent"

    assert await retry_until_stopped(asyncio.Event(), flaky) == "sent"
    assert calls == 3


async def test_topics_reapplied_under_load_lose_no_decision(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    await supported_meters(db, "05", 100)
    assert settings.kafka_bootstrap_servers is not None
    decisions = topic("routing_decisions").name(settings.topic_prefix)
    async with running(settings) as s, admin_client(settings.kafka_bootstrap_servers) as admin:
        sent = []
        for round_ in range(6):
            for i in range(50):
                sent.append((await s.attempt(f"05{(round_ * 50 + i) % 100:08d}")).data.attempt_id)
            drifted = round_ % 2 == 0
            if drifted:  # a config drift that apply then puts back, as an operator's re-apply would
                await admin.alter_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, decisions, configs={"retention.ms": "3600000"})]
                )
            changes = await apply(admin, settings.topic_prefix, ["p1", "p2", "p3"])
            assert any("configs updated" in c for c in changes) == drifted, changes
            await asyncio.sleep(0.2)
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) = $1 FROM routing_decisions WHERE attempt_id = ANY($2::uuid[])", 300, sent
            ),
            within=60,
            what="every attempt decided",
        )
        await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox"), what="outbox drained")
