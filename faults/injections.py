"""The faults a scenario injects while its load flows. Each is called with the index of every attempt sent."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

from bench.env import INSTITUTION
from domain.command_proof import sign
from faults.progress_monitor import APPLICATION
from faults.scenarios import OPERATOR, Inject, Run, beside_load_at
from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.topics import topic
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import CONTENT_TYPE


def kill_every(workers: list[str], every: int) -> Inject:
    """SIGKILL each worker in turn, then a new process at once: wherever it was at that moment."""

    async def inject(run: Run, i: int) -> None:
        if i and i % every == 0:
            worker = workers[(i // every - 1) % len(workers)]
            run.kill(worker)
            run.start(worker)
            run.fault_over()

    return inject


def change_membership(n: int) -> Inject:
    """Members join and leave the lookup and response groups while the load flows: each change is a rebalance
    in the middle of someone's batch. One leaves gracefully, one is SIGKILLed and never comes back (its
    partitions move only when its session times out)."""

    async def inject(run: Run, i: int) -> None:
        if i == n // 5:
            run.start("lookup#2", "lookup")
            run.start("responses#2", "responses")
            run.fault_over(2)
        elif i == 2 * n // 5:
            await run.stop("lookup")
            run.fault_over()
        elif i == 3 * n // 5:
            run.start("lookup#3", "lookup")
            run.fault_over()
        elif i == 4 * n // 5:
            run.kill("responses#2")
            run.fault_over()

    return inject


def block_past_poll_interval(index: int, seconds: float) -> Inject:
    """Holds a lock the lookup handler needs for longer than the poll interval, so the batches in flight
    outlast it: their members are dropped from the group while still applying."""

    async def hold(run: Run) -> None:
        conn = await run.env.db()
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE purchase_attempts IN SHARE MODE")  # blocks every insert
                await asyncio.sleep(seconds)
        finally:
            await conn.close()
        run.fault_over()

    return beside_load_at(index, hold)


def cut_db_connections_every(every: int, for_seconds: float = 1.0) -> Inject:
    """pg_terminate_backend on every worker connection busy in a statement or a transaction, repeatedly for a
    second: connections die mid-transaction and in the middle of COMMIT."""

    async def cut(run: Run) -> None:
        conn = await run.env.db()
        cut = 0
        try:
            until = asyncio.get_running_loop().time() + for_seconds
            while asyncio.get_running_loop().time() < until:
                cut += await conn.fetchval(
                    """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()
                         AND application_name <> $1 AND state IN ('active', 'idle in transaction')""",
                    APPLICATION,
                )
                await asyncio.sleep(0.01)
        finally:
            await conn.close()
        run.fault_over(cut)

    async def inject(run: Run, i: int) -> None:
        if i and i % every == 0:
            run.background(cut(run))

    return inject


def operator_commands(every: int, per: int) -> Inject:
    """Confirm support for meters already seen: every command sent twice, the copies shuffled among each other,
    so commands arrive duplicated and out of order while purchase attempts and answers flow."""

    async def inject(run: Run, i: int) -> None:
        if i < 100 or i % every:
            return
        assert run.producer is not None
        commands = [
            sign(
                ConfirmSupportRequested.new(
                    ConfirmSupportRequestedData(
                        meter_number=f"07{m:08d}", operator=OPERATOR, institution_id=INSTITUTION
                    ),
                    source="faults",
                    correlationid=str(uuid.uuid4()),
                ),
                run.env.signing_key,
            )
            for m in random.sample(range(min(i, 400) - 50), per)
        ]
        copies = commands * 2
        random.shuffle(copies)
        name = topic("operator_commands").name(run.env.settings.topic_prefix)
        for c in copies:
            run.commands.add(str(c.id))
            await run.producer.send(
                name, value=c.encode(), key=c.subject.encode(), headers=[("content-type", CONTENT_TYPE)]
            )

    return inject


def restart_postgres_at(index: int) -> Inject:
    """Stops PostgreSQL (fast shutdown: every connection cut, open transactions rolled back) and starts it again."""
    from infra import postgres_launcher
    from kernel.stack_state import StackState

    state = StackState.load(Settings().state_dir)
    if state is None:
        raise PpuError("the PostgreSQL restart scenario needs the local stack (`ppu stack up`)")
    root = postgres_launcher.usable_data_root(Path(state.postgres_dir))

    async def inject(run: Run, i: int) -> None:
        if i == index:
            await asyncio.to_thread(postgres_launcher.stop, root)
            await asyncio.sleep(2)
            await asyncio.to_thread(postgres_launcher.start, root)
            run.fault_over()

    return inject


def restart_broker_at(index: int) -> Inject:
    """Stops the Kafka broker (SIGTERM, clean shutdown) and starts it again on the same ports and log directory."""
    from infra import kafka_launcher
    from kernel.stack_state import StackState

    settings = Settings()
    state = StackState.load(settings.state_dir)
    if state is None:
        raise PpuError("the broker restart scenario needs the local stack (`ppu stack up`)")

    async def inject(run: Run, i: int) -> None:
        if i == index and state is not None:
            await asyncio.to_thread(kafka_launcher.stop, state.kafka_pid)
            await asyncio.sleep(2)
            broker = await asyncio.to_thread(kafka_launcher.start, Path(state.kafka_dir), settings.kafka_version)
            assert broker.pid is not None
            state.kafka_pid, state.kafka_pids = broker.pid, [broker.pid]
            state.save(settings.state_dir)
            run.fault_over()

    return inject
