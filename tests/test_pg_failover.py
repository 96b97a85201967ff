"""PostgreSQL failover under load, end to end: a primary with a synchronous standby (infra/postgres_standby.py),
the workers on a multi-host DATABASE_URL; the primary is stopped as a crash would stop it and the standby
promoted mid-stream; the workers follow it, and every purchase attempt is decided exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from db.migrate import migrate
from infra import postgres_launcher
from infra.postgres_standby import failover, multi_host_url, start_standby
from infra.stack import ensure_database
from infra.topic_admin import admin_client, apply
from kernel.connections import Endpoints, connect
from kernel.settings import Settings
from tests.harness import PROVIDERS, eventually, running, seed_reference, supported_meters


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[postgres_launcher.PostgresCluster, postgres_launcher.PostgresCluster]]:
    primary = postgres_launcher.start(tmp_path / "primary")
    try:
        standby = start_standby(primary, tmp_path / "standby")
        try:
            yield primary, standby
        finally:
            postgres_launcher.stop(standby.root)
    finally:
        postgres_launcher.stop(primary.root)


async def test_workers_follow_the_promoted_standby_and_lose_nothing(
    servers: tuple[postgres_launcher.PostgresCluster, postgres_launcher.PostgresCluster],
    endpoints: Endpoints,
    settings: Settings,
) -> None:
    primary, standby = servers
    await ensure_database(primary.url("postgres"), "ppu")
    url = multi_host_url(primary, standby)
    db = await connect(url)
    try:
        await migrate(db)
        await seed_reference(db)
        await supported_meters(db, "09", 40)
    finally:
        await db.close()
    on_pair = settings.model_copy(update={"database_url": url})
    async with admin_client(endpoints.kafka_bootstrap_servers) as admin:
        await apply(admin, settings.topic_prefix, PROVIDERS)
    sent = []
    async with running(on_pair) as system:
        for i in range(120):
            sent.append((await system.attempt(f"09{i % 40:08d}")).data.attempt_id)
            if i == 40:
                await asyncio.to_thread(failover, primary.root, standby.root)
            await asyncio.sleep(0.02)
        after = await connect(url)
        try:
            assert await after.fetchval("SELECT inet_server_port()") == standby.port, "the promoted standby"
            await eventually(
                lambda: after.fetchval(
                    "SELECT count(*) = $1 FROM routing_decisions WHERE attempt_id = ANY($2::uuid[])", len(sent), sent
                ),
                within=120,
                what="every attempt decided after the failover",
            )
            assert await after.fetchval("SELECT count(*) FROM purchase_attempts") == len(sent)
        finally:
            await after.close()
    assert isinstance(url, str) and url.count(",") == 1 and "target_session_attrs=read-write" in url
    assert not await _reachable(primary), "the old primary is down"


async def _reachable(cluster: postgres_launcher.PostgresCluster) -> bool:
    try:
        conn = await asyncpg.connect(cluster.url("postgres"), timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True
