"""`ppu stack up|down|status`: the local broker and database, with their addresses in a state file."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError

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
        shutil.rmtree(state_dir / "kafka-cluster", ignore_errors=True)  # a new cluster, never an old one's logs
        nodes = start_cluster(state_dir / "kafka-cluster", kafka_version, size=brokers)
        pids, bootstrap = [n.proc.pid for n in nodes.nodes if n.proc is not None], nodes.bootstrap
        asyncio.run(_all_brokers_ready(bootstrap, brokers))
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


async def _all_brokers_ready(bootstrap: str, brokers: int, within: float = 60.0) -> None:
    """Every node registered and answering: a port that accepts comes before a broker that serves (an admin
    request sent to it then fails NodeNotReady)."""
    from infra.topic_admin import admin_client

    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            async with admin_client(bootstrap) as admin:
                described = await admin.describe_cluster()
                if len(described["brokers"]) == brokers:
                    for b in described["brokers"]:  # each answers a request of its own
                        await admin._client.ready(b["node_id"])
                    return
        except (KafkaError, PpuError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise PpuError(f"the {brokers} Kafka nodes did not all answer within {within:.0f} s")
        await asyncio.sleep(0.5)


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
    for pid in {*state.kafka_pids, state.kafka_pid}:
        kafka_launcher.stop(pid)
    postgres_launcher.stop(Path(state.postgres_dir))
    if state.standby_dir is not None:
        postgres_launcher.stop(Path(state.standby_dir))
        # The cluster shape is throwaway: after a failover its old primary is behind and its standby a primary,
        # so neither can start as what it was. The next `up --standby` makes both anew.
        for folder in (state.postgres_dir, state.standby_dir):
            shutil.rmtree(folder, ignore_errors=True)
    if len(state.kafka_pids) > 1:
        shutil.rmtree(state.kafka_dir, ignore_errors=True)
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
