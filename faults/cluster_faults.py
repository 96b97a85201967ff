"""The faults of the cluster shape (`make faults-cluster`: three KRaft nodes and a PostgreSQL primary with a
synchronous standby, `ppu stack up --brokers 3 --standby`): the purchase-attempts leader killed five times, a
rolling restart of all three brokers, a broker paused past its session timeout, the PostgreSQL primary failed
over to the standby. Same load and invariants as `make faults`; each fault runs beside the load, not in its way."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faults.scenarios import Inject, Run, beside_load_at
from infra import stack
from infra.kafka_cluster import respawn_node
from infra.processes import pid_alive
from infra.topic_admin import admin_client
from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.stack_state import StackState
from kernel.topics import topic


def _cluster_state() -> tuple[Settings, StackState]:
    settings = Settings()
    state = StackState.load(settings.state_dir)
    if state is None or len(state.kafka_pids) != 3 or state.standby_dir is None:
        raise PpuError("the cluster scenarios need `ppu stack up --brokers 3 --standby` (make faults-cluster)")
    return settings, state


async def _restart(settings: Settings, state: StackState, node_id: int, how: int) -> None:
    """Stops node `node_id` with signal `how` and starts it again; the stack state keeps its new pid."""
    pid = state.kafka_pids[node_id - 1]
    os.kill(pid, how)
    for _ in range(600):  # a clean shutdown hands leadership over first
        await asyncio.sleep(0.1)
        if not pid_alive(pid):
            break
    else:
        raise PpuError(f"Kafka node {node_id} (pid {pid}) did not stop within 60 s")
    state.kafka_pids[node_id - 1] = await asyncio.to_thread(
        respawn_node, Path(state.kafka_dir), settings.kafka_version, node_id
    )
    state.kafka_pid = state.kafka_pids[0]
    state.save(settings.state_dir)


async def _leader(prefix: str, state: StackState) -> int:
    name = topic("purchase_attempts").name(prefix)
    async with admin_client(state.kafka_bootstrap_servers) as admin:
        described = await admin.describe_topics([name])
    return int(described[0]["partitions"][0]["leader"])


def kill_leader_times(at: int, times: int = 5) -> Inject:
    """One after another: whichever node leads partition 0 then is SIGKILLed and started again."""
    settings, state = _cluster_state()

    async def fault(run: Run) -> None:
        for _ in range(times):
            node = await _leader(run.env.settings.topic_prefix, state)
            await _restart(settings, state, node, signal.SIGKILL)
            run.fault_over()
            await asyncio.sleep(2)

    return beside_load_at(at, fault)


def rolling_restart(at: int) -> Inject:
    settings, state = _cluster_state()

    async def fault(run: Run) -> None:
        for node in (1, 2, 3):
            await _restart(settings, state, node, signal.SIGTERM)
            await asyncio.sleep(3)  # the restarted node catches up before the next goes
        run.fault_over()

    return beside_load_at(at, fault)


def pause_broker(at: int, seconds: float = 15.0) -> Inject:
    """SIGSTOP one node past the broker session timeout (9 s), then SIGCONT: it was fenced and rejoins."""
    _, state = _cluster_state()

    async def fault(run: Run) -> None:
        pid = state.kafka_pids[1]
        os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(seconds)
        os.kill(pid, signal.SIGCONT)
        run.fault_over()

    return beside_load_at(at, fault)


def fail_over_postgres(at: int) -> Inject:
    settings, _ = _cluster_state()

    async def fault(run: Run) -> None:
        await asyncio.to_thread(stack.failover, settings.state_dir)
        run.fault_over()

    return beside_load_at(at, fault)


def cluster_plan(n: int) -> dict[str, Callable[[], dict[str, Any]]]:
    """The PostgreSQL failover runs last: it leaves the stack without a standby."""
    slow = {"rate": 30.0}  # the load lasts n/30 s (30 s for 900): the faults happen while it flows
    return {
        "cluster: the purchase-attempts leader SIGKILLed five times": lambda: {
            "inject": kill_leader_times(n // 10),
            **slow,
        },
        "cluster: a rolling restart of all three brokers": lambda: {"inject": rolling_restart(n // 10), **slow},
        "cluster: a broker paused (SIGSTOP) past its session timeout": lambda: {
            "inject": pause_broker(n // 4),
            **slow,
        },
        "cluster: PostgreSQL primary failed over to the standby": lambda: {
            "inject": fail_over_postgres(n // 3),
            **slow,
        },
    }
