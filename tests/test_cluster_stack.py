"""`ppu stack up --brokers 3 --standby`, as a user runs it: three KRaft nodes and a PostgreSQL primary with a
synchronous standby; topics under the `cluster` profile; `ppu stack failover` promotes the standby and the same
DATABASE_URL reaches it; `ppu stack down` stops all of it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from kernel.settings import Settings
from tests.conftest import run_ppu

WITHOUT_SERVERS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")


async def test_cluster_stack_up_failover_down(settings: Settings, tmp_path: Path) -> None:
    own = settings.model_copy(update={"state_dir": tmp_path / "stack"})

    def ppu(*args: str) -> str:
        done = run_ppu(own, *args, drop=WITHOUT_SERVERS)
        assert done.returncode == 0, f"ppu {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    try:
        up = await asyncio.to_thread(ppu, "stack", "up", "--brokers", "3", "--standby")
        state = json.loads((tmp_path / "stack" / "stack.json").read_text())
        assert len(state["kafka_pids"]) == 3 and state["kafka_bootstrap_servers"].count(",") == 2, up
        url = state["database_url"]
        assert url.count(",") == 1 and "target_session_attrs=read-write" in url
        status = await asyncio.to_thread(ppu, "stack", "status")
        assert status.count("up at") == 3, status  # kafka (all three answer) and both PostgreSQL servers

        await asyncio.to_thread(ppu, "db", "migrate")
        await asyncio.to_thread(ppu, "topics", "apply", "--profile", "cluster", "--provider", "p1")
        checked = await asyncio.to_thread(ppu, "topics", "check", "--profile", "cluster", "--provider", "p1")
        assert checked.strip() == "topics match topics.yaml"

        conn = await asyncpg.connect(url)
        try:
            before = await conn.fetchval("SELECT inet_server_port()")
            await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        finally:
            await conn.close()
        await asyncio.to_thread(ppu, "stack", "failover")
        conn = await asyncpg.connect(url)  # the same URL: now the promoted standby
        try:
            assert await conn.fetchval("SELECT inet_server_port()") != before
            assert not await conn.fetchval("SELECT pg_is_in_recovery()")
            assert await conn.fetchval("SELECT n FROM kept") == 1, "a committed row survives the failover"
        finally:
            await conn.close()
    finally:
        done = await asyncio.to_thread(run_ppu, own, "stack", "down", drop=WITHOUT_SERVERS)
    assert done.returncode == 0 and "stopped" in done.stdout
    assert not (tmp_path / "stack" / "stack.json").exists()
