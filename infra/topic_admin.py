"""`ppu topics apply|check`: make the cluster match topics.yaml, or list how it differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from kernel.connections import kafka_client
from kernel.errors import PpuError
from kernel.topics import TopicSpec, concrete_topics

TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    async with kafka_client(client, client.start, client.close, bootstrap):
        yield client


async def _partitions(client: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    described = await client.describe_topics(names)
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


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


async def drift(client: AIOKafkaAdminClient, prefix: str, provider_ids: list[str]) -> list[str]:
    """One line per difference between the cluster and topics.yaml; empty when they match."""
    wanted = concrete_topics(prefix, provider_ids)
    existing = set(await client.list_topics())
    present = [n for n in wanted if n in existing]
    parts, configs = await _partitions(client, present), await _configs(client, present)
    problems = [f"{n}: missing" for n in wanted if n not in existing]
    for name in present:
        spec = wanted[name]
        if parts.get(name) != spec.partitions:
            problems.append(f"{name}: {parts.get(name)} partitions, topics.yaml says {spec.partitions}")
        for key, value in spec.kafka_configs().items():
            actual = configs.get(name, {}).get(key)
            if actual != value:
                problems.append(f"{name}: {key}={actual}, topics.yaml says {value}")
    return problems


async def apply(
    client: AIOKafkaAdminClient, prefix: str, provider_ids: list[str], replication_factor: int | None = None
) -> list[str]:
    """Creates missing topics, adds partitions and sets configs; idempotent. Returns what it changed.
    `replication_factor`: for a cluster, instead of topics.yaml's (one broker's) value."""
    wanted = concrete_topics(prefix, provider_ids)
    existing = set(await client.list_topics())
    changes: list[str] = []
    missing = [n for n in wanted if n not in existing]
    if missing:
        response = await client.create_topics([_new_topic(n, wanted[n], replication_factor) for n in missing])
        for name, code, *rest in response.topic_errors:
            if code == 0:
                changes.append(f"{name}: created")
            elif code != TOPIC_ALREADY_EXISTS:  # a topic a moment ago created elsewhere is not an error
                raise PpuError(f"creating {name} failed: error {code} {rest[0] if rest else ''}".strip())
    present = [n for n in wanted if n in existing]
    parts, configs = await _partitions(client, present), await _configs(client, present)
    grow = {n: NewPartitions(total_count=wanted[n].partitions) for n in present if parts[n] < wanted[n].partitions}
    if grow:
        await client.create_partitions(grow)
        changes += [f"{n}: partitions → {p.total_count}" for n, p in grow.items()]
    for n in present:
        if parts[n] > wanted[n].partitions:
            changes.append(f"{n}: has {parts[n]} partitions, more than {wanted[n].partitions}; Kafka cannot shrink")
    alter = [n for n in present if any(configs.get(n, {}).get(k) != v for k, v in wanted[n].kafka_configs().items())]
    if alter:
        await client.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, configs=wanted[n].kafka_configs()) for n in alter]
        )
        changes += [f"{n}: configs updated" for n in alter]
    return changes


def _new_topic(name: str, spec: TopicSpec, replication_factor: int | None = None) -> Any:
    replicas = replication_factor or spec.replication_factor
    return NewTopic(name, spec.partitions, replicas, topic_configs=spec.kafka_configs())
