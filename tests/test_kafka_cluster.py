"""On three Kafka nodes (replication factor 3): the leader of the purchase-attempt partitions is killed under
load, leadership moves, and the workers ride through it (aiokafka's retriable errors are waited out), losing
no decision."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.kafka_cluster import Cluster, start_cluster
from infra.topic_admin import admin_client, apply, drift
from kernel.settings import Settings
from kernel.topics import profile, topic
from tests.conftest import ROOT
from tests.harness import PROVIDERS, eventually, running, seed_reference, supported_meters


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    found = start_cluster(ROOT / ".local" / f"test-cluster-{uuid.uuid4().hex[:6]}", Settings().kafka_version)
    try:
        yield found
    finally:
        found.stop()


async def _leaders(admin: AIOKafkaAdminClient, name: str) -> dict[int, int]:
    described = await admin.describe_topics([name])
    return {p["partition"]: p["leader"] for p in described[0]["partitions"]}


async def test_killing_the_partitions_leader_under_load_loses_nothing(
    cluster: Cluster, settings: Settings, db: asyncpg.Connection
) -> None:
    on_cluster = settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap})
    await seed_reference(db)
    await supported_meters(db, "08", 60)
    name = topic("purchase_attempts").name(settings.topic_prefix)
    async with admin_client(cluster.bootstrap) as admin:
        await apply(admin, settings.topic_prefix, PROVIDERS, profile("cluster"))

        async def matches() -> bool:  # each broker's metadata cache learns of the new topics in its own time
            return await drift(admin, settings.topic_prefix, PROVIDERS, profile("cluster")) == []

        await eventually(matches, what="the topics as the cluster profile says")
        single = await drift(admin, settings.topic_prefix, PROVIDERS, profile("single"))
        assert f"{name}: replication factor 3, profile single says 1" in single
        assert f"{name}: min.insync.replicas=2, topics.yaml says 1" in single
        # One answer for both: brokers' metadata caches catch up one by one, so a second ask may meet one that
        # does not know the topic yet (a fresh-clone run failed so).
        victim = (await eventually(lambda: _all_led(admin, name), what="every partition led"))[0]
        async with running(on_cluster) as s:
            sent = []
            for i in range(240):
                sent.append((await s.attempt(f"08{i % 60:08d}")).data.attempt_id)
                if i == 80:
                    cluster.kill(victim)  # the leader of partition 0, and of others
                await asyncio.sleep(0.02)
            # The controller fences a dead broker after its session times out (9 s by default): wait for that.
            await eventually(lambda: _led_without(admin, name, victim), within=30, what=f"leaders other than {victim}")
            await eventually(
                lambda: db.fetchval(
                    "SELECT count(*) = $1 FROM routing_decisions WHERE attempt_id = ANY($2::uuid[])", len(sent), sent
                ),
                within=120,
                what="every attempt decided",
            )
            await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox"), what="all published")
        cluster.restart(victim)
    assert await db.fetchval("SELECT count(DISTINCT attempt_id) FROM routing_decisions") == len(sent)


async def _led_without(admin: AIOKafkaAdminClient, name: str, node: int) -> bool:
    try:
        leaders = await _leaders(admin, name)
    except KafkaError as e:  # the admin client asked the dead node itself: not known yet, ask again
        if not e.retriable:
            raise
        return False
    return node not in leaders.values() and all(v >= 0 for v in leaders.values())


async def _all_led(admin: AIOKafkaAdminClient, name: str) -> dict[int, int] | None:
    """Partition → leader when every partition has one, else None."""
    leaders = await _leaders(admin, name)
    complete = len(leaders) == topic("purchase_attempts").partitions and all(v >= 0 for v in leaders.values())
    return leaders if complete else None
