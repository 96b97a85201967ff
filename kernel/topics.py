"""The topic registry: every topic name in the code comes from here, read from topics.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kernel.errors import PpuError

TOPICS_FILE = Path(__file__).resolve().parent.parent / "topics.yaml"


@dataclass(frozen=True)
class TopicSpec:
    key: str  # the registry key, e.g. "lookup_responses"
    name_or_template: str
    templated: bool
    partitions: int
    retention_ms: int
    cleanup_policy: str
    schemas: tuple[str, ...]
    producer: str
    consumers: tuple[str, ...]
    external_consumers: str | None
    dead_letter: str | None
    message_key: str = "meter_number"
    configs: dict[str, str] = field(default_factory=dict)

    def name(self, prefix: str = "", **params: str) -> str:
        if self.templated:
            try:
                return prefix + self.name_or_template.format(**params)
            except KeyError as missing:
                raise PpuError(f"topic {self.key} needs {missing.args[0]}") from None
        return prefix + self.name_or_template

    def kafka_configs(self, profile: Profile | None = None) -> dict[str, str]:
        configs = {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}
        if profile is not None:
            configs["min.insync.replicas"] = str(profile.min_insync_replicas)
        return configs


@dataclass(frozen=True)
class Profile:
    """How topics are replicated for one deployment shape (topics.yaml `profiles`)."""

    name: str
    replication_factor: int
    min_insync_replicas: int


def profile(name: str) -> Profile:
    profiles = _raw().get("profiles", {})
    if name not in profiles:
        raise PpuError(f"no topics profile {name!r} in topics.yaml; these are: {', '.join(sorted(profiles))}")
    p = profiles[name]
    return Profile(name, int(p["replication_factor"]), int(p["min_insync_replicas"]))


def _load_text() -> str:
    return TOPICS_FILE.read_text()


@cache
def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(_load_text())
    return raw


@cache
def registry() -> dict[str, TopicSpec]:
    raw = _raw()
    defaults = raw.get("defaults", {})
    specs = {}
    for key, t in raw["topics"].items():
        schema = t["schema"]
        specs[key] = TopicSpec(
            key=key,
            name_or_template=t.get("template") or t["name"],
            templated="template" in t,
            partitions=int(t["partitions"]),
            retention_ms=int(t["retention_ms"]),
            cleanup_policy=t.get("cleanup_policy", defaults.get("cleanup_policy", "delete")),
            schemas=tuple(schema if isinstance(schema, list) else [schema]),
            producer=t["producer"],
            consumers=tuple(t.get("consumers") or ()),
            external_consumers=t.get("external_consumers"),
            dead_letter=t.get("dead_letter"),
            message_key=t.get("key", defaults.get("key", "meter_number")),
        )
    return specs


def topic(key: str) -> TopicSpec:
    try:
        return registry()[key]
    except KeyError:
        raise PpuError(f"no topic {key!r} in topics.yaml") from None


def concrete_topics(prefix: str, provider_ids: list[str]) -> dict[str, TopicSpec]:
    """Every topic name that should exist for these providers, with its spec."""
    out: dict[str, TopicSpec] = {}
    for spec in registry().values():
        if spec.templated:
            for pid in provider_ids:
                out[spec.name(prefix, provider_id=pid)] = spec
        else:
            out[spec.name(prefix)] = spec
    return out
