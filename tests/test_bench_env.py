"""The bench cleans up after earlier runs, and only after them."""

from __future__ import annotations

import asyncpg
import pytest

from bench.env import RUN_TOPICS, BenchEnv, retire
from kernel.connections import Endpoints
from kernel.settings import Settings
from kernel.topics import topic
from tests.conftest import drop_database, new_database

# As bench/run.py, bench/steps.py and bench/only.py name them: a run's tag, a step's letter, a round's number.
RUNS = ["b1795943591f.", "b1795943591.", "k1795942919.", "fd3e1c0a9.", "bpeer."]
STEPS = ["b1795943591w0.", "b1795943591w5.", "b1795943591c2.", "b1795943591o0.", "b1795943591t1.", "b1795943591e.t0x."]


@pytest.mark.parametrize("prefix", RUNS + STEPS)
def test_a_runs_topics_are_dropped(prefix: str) -> None:
    assert RUN_TOPICS.match(topic("purchase_attempts").name(prefix))


@pytest.mark.parametrize("prefix", ["", "prod.", "bank.", "k8s.", "fault.", "b."])
def test_a_deployments_topics_are_kept(prefix: str) -> None:
    assert not RUN_TOPICS.match(topic("purchase_attempts").name(prefix))
    assert not RUN_TOPICS.match("__consumer_offsets")


async def test_a_retired_steps_database_is_dropped_and_no_other(
    endpoints: Endpoints, template_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", endpoints.database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", endpoints.kafka_bootstrap_servers)
    done, kept = await new_database(endpoints, template_db), await new_database(endpoints, template_db)
    try:
        # A multi-host URL keeps its options after the name (bench/env.other_database): the name is what is dropped.
        await retire(BenchEnv(Settings(), f"{done}?target_session_attrs=read-write"))
        admin = await asyncpg.connect(endpoints.database_url)
        try:
            names = {r["datname"] for r in await admin.fetch("SELECT datname FROM pg_database")}
        finally:
            await admin.close()
        assert done.rsplit("/", 1)[1] not in names
        assert kept.rsplit("/", 1)[1] in names
    finally:
        await drop_database(endpoints, kept)
