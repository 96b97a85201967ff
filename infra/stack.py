"""`ppu stack up|down|status`: the local broker and database, with their addresses in a state file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from infra import kafka_launcher, postgres_launcher
from infra.processes import pid_alive, port_accepts
from kernel.errors import PpuError
from kernel.stack_state import StackState


async def ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def up(state_dir: Path, kafka_version: str, ephemeral: bool = False) -> StackState:
    state_dir.mkdir(parents=True, exist_ok=True)
    current = StackState.load(state_dir)
    if current is not None and pid_alive(current.kafka_pid) and _kafka_port_open(current):
        kafka_pid, bootstrap = current.kafka_pid, current.kafka_bootstrap_servers
    else:
        broker = kafka_launcher.start(state_dir / "kafka", kafka_version)
        assert broker.pid is not None
        kafka_pid, bootstrap = broker.pid, broker.bootstrap
    try:
        cluster = postgres_launcher.start(state_dir / "postgres", ephemeral=ephemeral)
        asyncio.run(ensure_database(cluster.url("postgres"), postgres_launcher.DB_NAME))
    except BaseException:
        kafka_launcher.stop(kafka_pid)
        raise
    state = StackState(bootstrap, cluster.url(), kafka_pid, str(state_dir / "kafka"), str(cluster.root))
    state.save(state_dir)
    return state


def _kafka_port_open(state: StackState) -> bool:
    return port_accepts(int(state.kafka_bootstrap_servers.rsplit(":", 1)[1]))


def down(state_dir: Path) -> bool:
    state = StackState.load(state_dir)
    if state is None:
        return False
    kafka_launcher.stop(state.kafka_pid)
    postgres_launcher.stop(Path(state.postgres_dir))
    StackState.path(state_dir).unlink()
    return True


def status(state_dir: Path) -> dict[str, str]:
    state = StackState.load(state_dir)
    if state is None:
        return {"kafka": "not started", "postgres": "not started"}
    pg_port = int(state.database_url.rsplit(":", 1)[1].split("/")[0])
    return {
        "kafka": f"{'up' if _kafka_port_open(state) else 'down'} at {state.kafka_bootstrap_servers}",
        "postgres": f"{'up' if port_accepts(pg_port) else 'down'} at 127.0.0.1:{pg_port}",
    }


def require(state_dir: Path) -> StackState:
    state = StackState.load(state_dir)
    if state is None:
        raise PpuError("no local stack: run `ppu stack up`, or set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    return state
