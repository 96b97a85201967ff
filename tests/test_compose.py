"""docker-compose.yml cannot run here (no Docker engine), so its wiring is checked against the real CLI."""

from __future__ import annotations

import click
import yaml

from kernel.settings import Settings
from ppu.cli import cli
from tests.conftest import ROOT
from workers.registry import WORKERS

IMAGE_ENV = {"kafka": "KAFKA_", "postgres": "POSTGRES_"}  # variables that belong to the upstream images


def _compose() -> dict[str, dict[str, object]]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]  # type: ignore[no-any-return]


def _resolves(words: list[str]) -> bool:
    command: click.Command = cli
    for word in words:
        if not isinstance(command, click.Group) or word.startswith("-"):
            break
        sub = command.get_command(click.Context(command), word)
        if sub is None:
            return False
        command = sub
    return not isinstance(command, click.Group)


def test_every_ppu_service_runs_a_real_command_with_real_settings() -> None:
    settings_env = {f.alias for f in Settings.model_fields.values() if f.alias}
    ours = {name: s for name, s in _compose().items() if "build" in s}
    assert {
        "migrate",
        "seed",
        "topics",
        "lookup-worker",
        "response-consumer",
        "command-consumer",
        "deadline-sweeper",
        "outbox-relay",
    } <= set(ours)
    for name, service in ours.items():
        command = service["command"]
        assert isinstance(command, list) and _resolves(command), f"{name}: {command} is not a ppu command"
        env = service.get("environment", {})
        assert isinstance(env, dict)
        assert set(env) <= settings_env, f"{name}: {set(env) - settings_env} are not settings"


def test_dependencies_exist_and_wait_for_health() -> None:
    services = _compose()
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict)
        for dep, cond in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond["condition"] in {"service_healthy", "service_completed_successfully"}
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    for name, prefix in IMAGE_ENV.items():
        env = services[name]["environment"]
        assert isinstance(env, dict) and all(k.startswith(prefix) for k in env)


def test_resolver_rejects_unknown_commands() -> None:
    assert not _resolves(["db", "no-such-command"])
    assert not _resolves(["db"])


def test_every_declared_worker_has_its_compose_service() -> None:
    services = _compose()
    for w in WORKERS:
        assert w.service in services, f"{w.name}: no {w.service} service"
        assert services[w.service]["command"] == ["worker", w.name]


def test_compose_runs_the_kafka_version_the_launcher_and_testcontainers_run() -> None:
    """One version everywhere: the launcher and testcontainers read PPU_KAFKA_VERSION; compose cannot, so it is
    held to it here."""
    assert _compose()["kafka"]["image"] == f"apache/kafka:{Settings().kafka_version}"


def test_the_cluster_override_adds_brokers_and_a_standby_with_real_settings() -> None:
    from kernel.topics import profile

    base = _compose()
    cluster = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())["services"]
    assert set(cluster) - set(base) == {"kafka-2", "kafka-3", "postgres-standby"}
    assert {cluster[n]["image"] for n in ("kafka", "kafka-2", "kafka-3")} == {base["kafka"]["image"]}
    assert cluster["postgres-standby"]["image"] == base["postgres"]["image"], "the standby runs the primary's version"
    voters = cluster["kafka"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.count("@") == 3 and {
        cluster[n]["environment"]["KAFKA_NODE_ID"] for n in ("kafka", "kafka-2", "kafka-3")
    } == {1, 2, 3}
    settings_env = {f.alias for f in Settings.model_fields.values() if f.alias}
    for name in [n for n, s in base.items() if "build" in s]:
        env = cluster[name]["environment"]
        assert set(env) <= settings_env, f"{name}: {set(env) - settings_env} are not settings"
        assert (
            env["KAFKA_BOOTSTRAP_SERVERS"].count(",") == 2 and "target_session_attrs=read-write" in env["DATABASE_URL"]
        )
        assert profile(env["PPU_TOPICS_PROFILE"]).replication_factor == 3
    for script in ("infra/compose/primary-replication.sh", "infra/compose/standby.sh"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is executable"
