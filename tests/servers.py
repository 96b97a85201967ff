"""Where the tests' Kafka and PostgreSQL come from: environment, then testcontainers, then our launcher."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra import kafka_launcher, postgres_launcher
from infra.stack import ensure_database
from kernel.connections import Endpoints


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@contextmanager
def _containers(kafka_version: str) -> Iterator[Endpoints]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer(f"apache/kafka:{kafka_version}").with_kraft() as kafka, PostgresContainer("postgres:16") as pg:
        url = pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
        yield Endpoints(kafka.get_bootstrap_server(), url)


@contextmanager
def _launcher(state_dir: Path, kafka_version: str) -> Iterator[Endpoints]:
    import asyncio

    shutil.rmtree(state_dir, ignore_errors=True)
    broker = kafka_launcher.start(state_dir / "kafka", kafka_version)
    try:
        cluster = postgres_launcher.start(state_dir / "postgres", ephemeral=True)
        try:
            asyncio.run(ensure_database(cluster.url("postgres"), postgres_launcher.DB_NAME))
            yield Endpoints(broker.bootstrap, cluster.url())
        finally:
            postgres_launcher.stop(cluster.root)
    finally:
        assert broker.pid is not None
        kafka_launcher.stop(broker.pid)
        shutil.rmtree(state_dir, ignore_errors=True)


@contextmanager
def servers(state_dir: Path, kafka_version: str) -> Iterator[Endpoints]:
    kafka, db = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if kafka and db:
        yield Endpoints(kafka, db)
    elif _docker_answers():
        with _containers(kafka_version) as found:
            yield found
    else:
        with _launcher(state_dir, kafka_version) as found:
            yield found
