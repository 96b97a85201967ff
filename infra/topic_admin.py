"""`ppu topics apply|check`: make the cluster match topics.yaml, or list how it differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from kernel.connections import kafka_client
from kernel.errors import PpuError
from kernel.topics import Profile, TopicSpec, concrete_topics, profile

TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    async with kafka_client(client, client.start, client.close, bootstrap):
        yield client


async def partition_counts(client: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[int, int]]:
    """Per topic: its partition count, and the fewest replicas any of its partitions has."""
    if not names:
        return {}
    described = await client.describe_topics(names)
    return {
        t["topic"]: (len(t["partitions"]), min((len(p["replicas"]) for p in t["partitions"]), default=0))
        for t in described
        if t["error_code"] == 0
    }


async def _configs(client: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    responses = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            _err, _msg, _type, name, entries = resource[:5]
            out[name] = {e[0]: e[1] for e in entries}
    return out


async def drift(
    client: AIOKafkaAdminClient, prefix: str, provider_ids: list[str], shape: Profile | None = None
) -> list[str]:
    """One line per difference between the cluster and topics.yaml (under the profile `shape`, default `single`);
    empty when they match."""
    shape = shape or profile("single")
    wanted = concrete_topics(prefix, provider_ids)
    existing = set(await client.list_topics())
    present = [n for n in wanted if n in existing]
    parts, configs = await partition_counts(client, present), await _configs(client, present)
    problems = [f"{n}: missing" for n in wanted if n not in existing]
    for name in present:
        spec = wanted[name]
        count, replicas = parts.get(name, (None, None))
        if count != spec.partitions:
            problems.append(f"{name}: {count} partitions, topics.yaml says {spec.partitions}")
        if replicas != shape.replication_factor:
            problems.append(
                f"{name}: replication factor {replicas}, profile {shape.name} says {shape.replication_factor}"
            )
        for key, value in spec.kafka_configs(shape).items():
            actual = configs.get(name, {}).get(key)
            if actual != value:
                problems.append(f"{name}: {key}={actual}, topics.yaml says {value}")
    return problems


async def apply(
    client: AIOKafkaAdminClient, prefix: str, provider_ids: list[str], shape: Profile | None = None
) -> list[str]:
    """Creates missing topics, adds partitions and sets configs under the profile `shape` (default `single`);
    idempotent. Returns what it changed. A replication factor that differs is reported, not changed (that takes
    a partition reassignment, which an operator plans)."""
    shape = shape or profile("single")
    wanted = concrete_topics(prefix, provider_ids)
    existing = set(await client.list_topics())
    changes: list[str] = []
    missing = [n for n in wanted if n not in existing]
    if missing:
        response = await client.create_topics([_new_topic(n, wanted[n], shape) for n in missing])
        for name, code, *rest in response.topic_errors:
            if code == 0:
                changes.append(f"{name}: created")
            elif code != TOPIC_ALREADY_EXISTS:  # a topic a moment ago created elsewhere is not an error
                raise PpuError(f"creating {name} failed: error {code} {rest[0] if rest else ''}".strip())
    present = [n for n in wanted if n in existing]
    parts, configs = await partition_counts(client, present), await _configs(client, present)
    count = {n: parts[n][0] for n in present}
    grow = {n: NewPartitions(total_count=wanted[n].partitions) for n in present if count[n] < wanted[n].partitions}
    if grow:
        await client.create_partitions(grow)
        changes += [f"{n}: partitions → {p.total_count}" for n, p in grow.items()]
    for n in present:
        if count[n] > wanted[n].partitions:
            changes.append(f"{n}: has {count[n]} partitions, more than {wanted[n].partitions}; Kafka cannot shrink")
        if parts[n][1] != shape.replication_factor:
            changes.append(
                f"{n}: replication factor {parts[n][1]}, profile {shape.name} says {shape.replication_factor}; "
                "not changed (reassign its partitions: kafka-reassign-partitions)"
            )
    configs_of = {n: wanted[n].kafka_configs(shape) for n in present}
    alter = [n for n in present if any(configs.get(n, {}).get(k) != v for k, v in configs_of[n].items())]
    if alter:
        await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, n, configs=configs_of[n]) for n in alter])
        changes += [f"{n}: configs updated" for n in alter]
    return changes


def _new_topic(name: str, spec: TopicSpec, shape: Profile) -> Any:
    return NewTopic(name, spec.partitions, shape.replication_factor, topic_configs=spec.kafka_configs(shape))
