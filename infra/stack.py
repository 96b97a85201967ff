"""`ppu stack up|down|status`: the local broker and database, with their addresses in a state file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from infra import kafka_launcher, postgres_launcher
from infra.kafka_cluster import start_cluster
from infra.postgres_standby import failover as promote
from infra.postgres_standby import multi_host_url, start_standby
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


def up(
    state_dir: Path, kafka_version: str, ephemeral: bool = False, brokers: int = 1, standby: bool = False
) -> StackState:
    """One broker, or `brokers` KRaft nodes (broker and controller each); one PostgreSQL server, or a primary with
    a synchronous standby (the database URL then names both, and follows the primary)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    current = StackState.load(state_dir)
    pids = (current.kafka_pids or [current.kafka_pid]) if current is not None else []
    if current is not None and len(pids) == brokers and all(map(pid_alive, pids)) and _kafka_port_open(current):
        bootstrap = current.kafka_bootstrap_servers
    elif brokers == 1:
        broker = kafka_launcher.start(state_dir / "kafka", kafka_version)
        assert broker.pid is not None
        pids, bootstrap = [broker.pid], broker.bootstrap
    else:
        nodes = start_cluster(state_dir / "kafka-cluster", kafka_version, size=brokers)
        pids, bootstrap = [n.proc.pid for n in nodes.nodes if n.proc is not None], nodes.bootstrap
    try:
        cluster = postgres_launcher.start(state_dir / "postgres", ephemeral=ephemeral)
        asyncio.run(ensure_database(cluster.url("postgres"), postgres_launcher.DB_NAME))
        url, standby_dir = cluster.url(), None
        if standby:
            second = start_standby(cluster, state_dir / "postgres-standby")
            url, standby_dir = multi_host_url(cluster, second), str(second.root)
    except BaseException:
        for pid in pids:
            kafka_launcher.stop(pid)
        raise
    kafka_dir = str(state_dir / ("kafka" if brokers == 1 else "kafka-cluster"))
    state = StackState(bootstrap, url, pids[0], kafka_dir, str(cluster.root), pids, standby_dir)
    state.save(state_dir)
    return state


def failover(state_dir: Path) -> StackState:
    """`ppu stack failover`: the primary stopped as a crash would stop it, the standby promoted."""
    state = require(state_dir)
    if state.standby_dir is None:
        raise PpuError("no standby: start the stack with `ppu stack up --standby`")
    promote(Path(state.postgres_dir), Path(state.standby_dir))
    return state


def _kafka_port_open(state: StackState) -> bool:
    return all(port_accepts(int(a.rsplit(":", 1)[1])) for a in state.kafka_bootstrap_servers.split(","))


def down(state_dir: Path) -> bool:
    state = StackState.load(state_dir)
    if state is None:
        return False
    for pid in state.kafka_pids or [state.kafka_pid]:
        kafka_launcher.stop(pid)
    postgres_launcher.stop(Path(state.postgres_dir))
    if state.standby_dir is not None:
        postgres_launcher.stop(Path(state.standby_dir))
    StackState.path(state_dir).unlink()
    return True


def status(state_dir: Path) -> dict[str, str]:
    state = StackState.load(state_dir)
    if state is None:
        return {"kafka": "not started", "postgres": "not started"}
    hosts = state.database_url.split("@", 1)[1].split("/", 1)[0].split(",")
    ports = [int(h.rsplit(":", 1)[1]) for h in hosts]
    return {
        "kafka": f"{'up' if _kafka_port_open(state) else 'down'} at {state.kafka_bootstrap_servers}",
        "postgres": ", ".join(f"{'up' if port_accepts(p) else 'down'} at 127.0.0.1:{p}" for p in ports),
    }


def require(state_dir: Path) -> StackState:
    state = StackState.load(state_dir)
    if state is None:
        raise PpuError("no local stack: run `ppu stack up`, or set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    return state
