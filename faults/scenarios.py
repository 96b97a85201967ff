"""The scenarios: load through real worker processes, faults injected while it flows, invariants afterwards."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.env import INSTITUTION, PROVIDERS, ROOT, BenchEnv, prepare
from faults.invariants import Verdict, check
from infra.processes import stop_children
from ppu.topics import topic
from ppu.wiring import started_producer
from providers.kafka_simulator import Coverage, run_simulator
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData

WORKERS = ["lookup", "responses", "commands", "sweeper", "outbox-relay"]


@dataclass
class Run:
    env: BenchEnv
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    faults: int = 0

    def start(self, name: str) -> None:
        logs = ROOT / ".local" / "faults" / self.env.settings.topic_prefix.rstrip(".")
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("ab") as log:  # kept for diagnosing a failed scenario
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "ppu.cli", "worker", name],
                cwd=ROOT,
                env=self.env.env(PPU_ROUND_DEADLINE_SECONDS="3", PPU_BATCH_MAX_RECORDS="50", PPU_LOG_LEVEL="INFO"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill_and_restart(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)
        self.faults += 1
        self.start(name)


Inject = Callable[[Run, int], Awaitable[None]]  # called with the index of each attempt as it is sent


@dataclass
class Outcome:
    scenario: str
    messages: int
    faults: int
    verdict: Verdict


def attempt_bytes(i: int) -> tuple[str, bytes, bytes]:
    meter = f"07{i % 400:08d}"  # 400 meters: first sightings, then known ones
    data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=meter, institution_id=INSTITUTION)
    event = PurchaseAttempted.new(data, source="faults", correlationid=str(data.attempt_id))
    return str(data.attempt_id), meter.encode(), event.encode()


async def scenario(
    name: str, n: int, inject: Inject | None = None, copies: int = 1, poison: int = 0, rate: float = 150
) -> Outcome:
    env = await prepare(f"f{uuid.uuid4().hex[:8]}")
    run = Run(env)
    for w in WORKERS:
        run.start(w)
    stop = asyncio.Event()
    sims = [
        asyncio.ensure_future(
            run_simulator(
                env.bootstrap, env.settings.topic_prefix, p, Coverage(re.compile(r"07\d*[0-4]"), "Fault City"), stop
            )
        )
        for p in PROVIDERS
    ]
    expected: set[str] = set()
    poisoned: set[bytes] = set()
    attempts_topic = topic("purchase_attempts").name(env.settings.topic_prefix)
    try:
        async with started_producer(env.bootstrap) as producer:
            for i in range(n):
                attempt_id, key, value = attempt_bytes(i)
                expected.add(attempt_id)
                for _ in range(copies):
                    await producer.send(attempts_topic, value=value, key=key)
                if poison and i % max(1, n // poison) == 0 and len(poisoned) < poison:
                    bad = random.choice([b"\x00\x01garbage", b'{"truncated": ', b'{"specversion": "1.0"}'])
                    bad += uuid.uuid4().hex.encode()  # each poison message unique, to count it exactly once
                    poisoned.add(bad)
                    await producer.send(attempts_topic, value=bad, key=key)
                if inject is not None:
                    await inject(run, i)
                await asyncio.sleep(1 / rate)
        await _quiesce(env, expected)
        # Providers and consumers stop first; the relay then drains what they wrote last, and stops.
        stop.set()
        await asyncio.gather(*sims, return_exceptions=True)
        stop_children([p for name, p in run.procs.items() if name != "outbox-relay"])
        await _drained(env)
    finally:
        stop.set()
        await asyncio.gather(*sims, return_exceptions=True)
        stop_children(list(run.procs.values()))
    return Outcome(name, n * copies + len(poisoned), run.faults, await check(env, expected, poisoned))


async def _quiesce(env: BenchEnv, expected: set[str], within: float = 90) -> None:
    """Waits until every attempt is decided and the outbox is empty (or `within` seconds pass)."""
    conn = await env.db()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            decided = await conn.fetchval("SELECT count(*) FROM routing_decisions")
            unsent = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            if decided >= len(expected) and unsent == 0:
                await asyncio.sleep(2)  # late duplicates, if any, would land now
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _drained(env: BenchEnv, within: float = 30) -> None:
    conn = await env.db()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def kill_every(worker: str, every: int) -> Inject:
    async def inject(run: Run, i: int) -> None:
        if i and i % every == 0:
            run.kill_and_restart(worker)

    return inject


def restart_postgres_at(index: int) -> Inject:
    """Stops PostgreSQL (fast shutdown: every connection cut, open transactions rolled back) and starts it again."""
    from infra import postgres_launcher
    from infra.stack import StackState
    from ppu.errors import PpuError
    from ppu.settings import Settings

    state = StackState.load(Settings().state_dir)
    if state is None:
        raise PpuError("the PostgreSQL restart scenario needs the local stack (`ppu stack up`)")
    root = postgres_launcher.usable_data_root(Path(state.postgres_dir))

    async def inject(run: Run, i: int) -> None:
        if i == index:
            await asyncio.to_thread(postgres_launcher.stop, root)
            await asyncio.sleep(2)
            await asyncio.to_thread(postgres_launcher.start, root)
            run.faults += 1

    return inject


def restart_broker_at(index: int) -> Inject:
    """Stops the Kafka broker (SIGTERM, clean shutdown) and starts it again on the same ports and log directory."""
    from infra import kafka_launcher
    from infra.stack import StackState
    from ppu.errors import PpuError
    from ppu.settings import Settings

    settings = Settings()
    state = StackState.load(settings.state_dir)
    if state is None:
        raise PpuError("the broker restart scenario needs the local stack (`ppu stack up`)")

    async def inject(run: Run, i: int) -> None:
        nonlocal state
        if i == index and state is not None:
            await asyncio.to_thread(kafka_launcher.stop, state.kafka_pid)
            await asyncio.sleep(2)
            broker = await asyncio.to_thread(kafka_launcher.start, Path(state.kafka_dir), settings.kafka_version)
            assert broker.pid is not None
            state.kafka_pid = broker.pid
            state.save(settings.state_dir)
            run.faults += 1

    return inject
