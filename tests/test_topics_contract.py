"""topics.yaml is the one place that names topics; `ppu topics apply|check` make and compare the cluster."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka.admin import NewPartitions

from infra.topic_admin import admin_client, apply, drift
from kernel.settings import Settings
from kernel.topics import concrete_topics, registry, topic
from schemas.registry import MODELS
from tests.conftest import ROOT, cli_env

CODE_DIRS = ["ppu", "workers", "schemas", "db", "infra", "console", "providers", "bench", "faults"]


async def _drift_settled(client: Any, prefix: str, providers: list[str], at_least: int = 1) -> list[str]:
    """Brokers apply metadata changes asynchronously: read until the change shows (bounded)."""
    problems: list[str] = []
    for _ in range(50):
        problems = await drift(client, prefix, providers)
        if len(problems) >= at_least:
            break
        await asyncio.sleep(0.2)
    return problems


def test_every_topic_has_a_schema_and_a_reader() -> None:
    for spec in registry().values():
        assert spec.schemas and all(s in MODELS for s in spec.schemas), spec.key
        assert spec.consumers or spec.external_consumers, f"{spec.key} has no consumer"
        assert spec.message_key == "meter_number", spec.key
        if spec.consumers:  # every topic we consume has a dead-letter topic of the same shape
            assert spec.dead_letter is not None, spec.key
            dlq = topic(spec.dead_letter)
            assert dlq.templated == spec.templated and dlq.schemas == ("DeadLetterHeaders",)


def test_code_names_no_topic_outside_topics_yaml() -> None:
    literals = {spec.name_or_template for spec in registry().values()}
    # Also the stem of each name, so that an f-string cannot rebuild one piece by piece.
    stems = {re.sub(r"\.v1$", "", n).split("{")[0].rstrip(".") for n in literals}
    offenders = []
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {s}" for s in stems if s in text]
    assert offenders == []


def test_template_makes_one_topic_per_provider() -> None:
    names = concrete_topics("x.", ["p1", "p2"])
    assert "x.ppu.lookup-requests.p1.v1" in names and "x.ppu.lookup-requests.p2.dlq.v1" in names


async def test_apply_is_idempotent_and_check_reports_partition_drift(settings: Settings) -> None:
    assert settings.kafka_bootstrap_servers is not None
    async with admin_client(settings.kafka_bootstrap_servers) as client:
        created = await apply(client, settings.topic_prefix, ["p1"])
        assert len(created) == len(concrete_topics(settings.topic_prefix, ["p1"]))
        assert await apply(client, settings.topic_prefix, ["p1"]) == []
        assert await drift(client, settings.topic_prefix, ["p1"]) == []
        name = topic("purchase_attempts").name(settings.topic_prefix)
        await client.create_partitions({name: NewPartitions(total_count=topic("purchase_attempts").partitions + 2)})
        problems = await _drift_settled(client, settings.topic_prefix, ["p1"])
    assert problems == [f"{name}: 8 partitions, topics.yaml says 6"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ppu.cli", "topics", "check", "--provider", "p1"],
        capture_output=True,
        text=True,
        env=cli_env(settings),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"{name}: 8 partitions, topics.yaml says 6" in done.stdout


async def test_check_reports_missing_topics_and_changed_retention(settings: Settings) -> None:
    assert settings.kafka_bootstrap_servers is not None
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async with admin_client(settings.kafka_bootstrap_servers) as client:
        await apply(client, settings.topic_prefix, ["p1"])
        name = topic("lookup_responses").name(settings.topic_prefix)
        await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": "1000"})])
        problems = await _drift_settled(client, settings.topic_prefix, ["p1", "p9"], at_least=3)
        assert f"{name}: retention.ms=1000, topics.yaml says 604800000" in problems
        assert f"{settings.topic_prefix}ppu.lookup-requests.p9.v1: missing" in problems
        await apply(client, settings.topic_prefix, ["p1", "p9"])
        assert await drift(client, settings.topic_prefix, ["p1", "p9"]) == []


def test_contracts_export_is_not_stale() -> None:
    from schemas.export import EXPORT_DIR, stale

    assert stale(EXPORT_DIR) == [], "run `ppu contracts export` and commit schemas/json"


def test_exported_contracts_pin_type_and_version(tmp_path: Path) -> None:
    import json

    from schemas.export import write

    write(tmp_path)
    schema = json.loads((tmp_path / "LookupResponded.schema.json").read_text())
    assert schema["properties"]["type"]["const"] == "ppu.lookup.responded"
    assert schema["properties"]["schemaversion"]["const"] == 1
    assert "data" in schema["required"] and "id" in schema["required"]


async def test_topics_check_honours_the_profile(settings: Settings, topics: list[str]) -> None:
    """One broker, topics made under `single`: `check --profile cluster` names every topic's replication factor
    and min.insync.replicas; an unknown profile is one readable line."""
    from tests.conftest import run_ppu

    providers = ["--provider", "p1", "--provider", "p2", "--provider", "p3"]
    single = await asyncio.to_thread(run_ppu, settings, "topics", "check", *providers)
    assert single.returncode == 0, single.stdout + single.stderr
    cluster = await asyncio.to_thread(run_ppu, settings, "topics", "check", "--profile", "cluster", *providers)
    name = topic("purchase_attempts").name(settings.topic_prefix)
    assert cluster.returncode == 1
    assert f"{name}: replication factor 1, profile cluster says 3" in cluster.stdout
    assert f"{name}: min.insync.replicas=1, topics.yaml says 2" in cluster.stdout
    bad = await asyncio.to_thread(run_ppu, settings, "topics", "check", "--profile", "galaxy", *providers)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "no topics profile 'galaxy'" in bad.stderr
