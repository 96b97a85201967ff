"""The scenario runner: load through real worker processes, faults injected while it flows, invariants afterwards.

The faults themselves are in `faults/injections.py`; what must hold afterwards is in `faults/invariants.py`."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.env import INSTITUTION, PROVIDERS, ROOT, BenchEnv, prepare
from faults.http_provider import SWITCH_ELECTRUM_ID, Served, serve_simulator
from faults.invariants import Verdict, check
from faults.progress_monitor import ProgressMonitor, drained, every_attempt_decided
from infra.processes import stop_children
from kernel.connections import started_producer
from kernel.topics import topic
from providers.kafka_simulator import Coverage, run_simulator
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from workers.registry import ALL

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"  # Debian's libfaketime (make faults-prepare)
DEADLINE_SECONDS = 3  # the round deadline the workers run with: short, so late answers happen within a scenario
OPERATOR = "faults-operator"
RECOVERY_LIMIT = 30.0  # seconds: progress must resume within this after every fault
SETTLE_LIMIT = 60.0  # seconds after the last message sent until everything is decided and published

# Half the meters are supported by every provider, so answers change statuses (and can go stale).
STEADY = Coverage(re.compile(r"07\d*[0-4]"), "Fault City")


@dataclass
class Run:
    env: BenchEnv
    worker_env: dict[str, str]
    producer: AIOKafkaProducer | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    faults: int = 0
    fault_ends: list[float] = field(default_factory=list)  # loop time each fault was over (the process back...)
    commands: set[str] = field(default_factory=set)  # ids of operator commands sent
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    env_for: dict[str, dict[str, str]] = field(default_factory=dict)  # per process, e.g. its failpoints
    poison: set[bytes] = field(default_factory=set)  # hostile records sent: each must be dead-lettered once
    clock_off: dict[str, str] = field(default_factory=dict)  # process → libfaketime offset, e.g. "+30s"

    def start(self, name: str, worker: str | None = None, args: tuple[str, ...] = ()) -> None:
        """Starts `ppu worker <worker>` as process `name` (several processes may run one worker)."""
        logs = ROOT / ".local" / "faults" / self.env.settings.topic_prefix.rstrip(".")
        logs.mkdir(parents=True, exist_ok=True)
        # A host whose clock is off: libfaketime preloaded into this one process (its monotonic clock left alone).
        # Preloaded rather than through the `faketime` wrapper, which keeps its own pid: signals must reach us.
        extra = (
            {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": self.clock_off[name], "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
            if name in self.clock_off
            else {}
        )
        with (logs / f"{name}.log").open("ab") as log:  # kept for diagnosing a failed scenario
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "ppu.cli", "worker", worker or name, *args],
                cwd=ROOT,
                env=self.env.env(**self.worker_env, **self.env_for.get(name, {}), **extra),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def fault_over(self, count: int = 1) -> None:
        self.faults += count
        self.fault_ends.append(asyncio.get_running_loop().time())

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    async def stop(self, name: str) -> None:
        """A graceful leave (SIGTERM): the member leaves the group and its partitions move at once."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """A fault that lasts a while runs beside the load rather than pausing it."""
        self.tasks.append(asyncio.ensure_future(work))


Inject = Callable[[Run, int], Awaitable[None]]  # called with the index of each attempt as it is sent


def beside_load_at(index: int, fault: Callable[[Run], Coroutine[Any, Any, None]]) -> Inject:
    """Starts `fault` when attempt `index` is sent, and lets it run beside the load."""

    async def inject(run: Run, i: int) -> None:
        if i == index:
            run.background(fault(run))

    return inject


@dataclass
class ScenarioResult:
    scenario: str
    messages: int
    faults: int
    verdict: Verdict
    recovery_s: float | None  # the slowest return to progress after a fault (None: no fault injected)
    settle_s: float
    injects: bool  # a scenario meant to inject faults that injected none proves nothing: it fails

    @property
    def ok(self) -> bool:
        return (
            self.verdict.ok
            and (self.faults > 0 or not self.injects)
            and (self.recovery_s is None or self.recovery_s <= RECOVERY_LIMIT)
            and self.settle_s <= SETTLE_LIMIT
        )


def attempt_bytes(i: int) -> tuple[str, bytes, bytes]:
    meter = f"07{i % 400:08d}"  # 400 meters: first sightings, then known ones
    data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=meter, institution_id=INSTITUTION)
    event = PurchaseAttempted.new(data, source="faults", correlationid=str(data.attempt_id))
    return str(data.attempt_id), meter.encode(), event.encode()


def poison_bytes() -> bytes:
    bad = random.choice([b"\x00\x01garbage", b'{"truncated": ', b'{"specversion": "1.0"}'])
    return bad + uuid.uuid4().hex.encode()  # each poison message unique, to count it exactly once


async def scenario(
    name: str,
    n: int,
    inject: Inject | None = None,
    copies: int = 1,
    poison: int = 0,
    rate: float = 150,
    providers: dict[str, Coverage] | None = None,
    worker_env: dict[str, str] | None = None,
    extra: list[str] | None = None,
    failpoint: tuple[str, str] | None = None,
    load: Inject | None = None,
    http_provider: str | None = None,
    clock_off: dict[str, str] | None = None,
) -> ScenarioResult:
    """`failpoint`: (worker, "PLACE:N"), the worker killing itself at the N-th pass of PLACE, revived each time
    (three times with the failpoint, then without)."""
    env = await prepare(f"f{uuid.uuid4().hex[:8]}")
    await _add_operator(env)
    run = Run(env, {"PPU_ROUND_DEADLINE_SECONDS": str(DEADLINE_SECONDS), "PPU_BATCH_MAX_RECORDS": "50"})
    run.worker_env |= {"PPU_LOG_LEVEL": "INFO", **(worker_env or {})}
    if failpoint is not None:
        run.env_for[failpoint[0]] = {"PPU_FAILPOINTS": failpoint[1]}
    run.clock_off = clock_off or {}
    for w in ALL:  # every worker the registry declares, each in its own process
        run.start(w)
    served = await _bridged_provider(run, http_provider) if http_provider else None
    for w in extra or []:  # a second member from the start
        run.start(f"{w}#2", w)
    stop, watching = asyncio.Event(), asyncio.Event()
    garbage: list[bytes] = []
    sims = [
        asyncio.ensure_future(run_simulator(env.bootstrap, env.settings.topic_prefix, p, c, stop, sent_garbage=garbage))
        for p, c in (providers or dict.fromkeys(PROVIDERS, STEADY)).items()
        if p != http_provider  # that one answers over HTTP, through the bridge
    ]
    monitor = ProgressMonitor(env)
    monitoring = asyncio.ensure_future(monitor.run(watching))
    reviving = asyncio.ensure_future(_revive(run, failpoint[0]) if failpoint else watching.wait())
    expected: set[str] = set()
    poisoned: set[bytes] = set()
    attempts_topic = topic("purchase_attempts").name(env.settings.topic_prefix)
    loop = asyncio.get_running_loop()
    try:
        async with started_producer(env.bootstrap) as producer:
            run.producer = producer
            for i in range(n):
                attempt_id, key, value = attempt_bytes(i)
                expected.add(attempt_id)
                for _ in range(copies):
                    await producer.send(attempts_topic, value=value, key=key)
                if poison and i % max(1, n // poison) == 0 and len(poisoned) < poison:
                    poisoned.add(bad := poison_bytes())
                    await producer.send(attempts_topic, value=bad, key=key)
                for step in (inject, load):  # load: more messages beside the attempts (not a fault)
                    if step is not None:
                        await step(run, i)
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*run.tasks)
        sent_at = loop.time()
        settle = await every_attempt_decided(env, expected, within=SETTLE_LIMIT + 30) - sent_at
        reviving.cancel()
        # Providers stop first (their answers in flight delivered), and the consumers apply those; then the
        # consumers stop, and the relay drains what they wrote last, and stops.
        stop.set()
        await asyncio.gather(*sims, return_exceptions=True)
        await every_attempt_decided(env, expected, within=30)
        stop_children([p for name, p in run.procs.items() if name != "outbox-relay"])
        await drained(env)
    finally:
        stop.set()
        watching.set()
        reviving.cancel()
        await asyncio.gather(*sims, *run.tasks, monitoring, reviving, return_exceptions=True)
        stop_children(list(run.procs.values()))
        if served is not None:
            await served.stop()
    verdict = await check(env, expected, poisoned | set(garbage) | run.poison, run.commands)
    recovery = max((monitor.recovery(at) for at in run.fault_ends), default=None)
    messages = n * copies + len(poisoned) + len(run.poison) + 2 * len(run.commands)  # each command is sent twice
    injects = inject is not None or failpoint is not None
    return ScenarioResult(name, messages, run.faults, verdict, recovery, settle, injects)


async def _revive(run: Run, name: str, times: int = 3) -> None:
    """Starts the process again each time its failpoint killed it; after `times` deaths, without the failpoint."""
    while True:
        if run.procs[name].poll() is not None:
            run.fault_over()
            if run.faults >= times:
                run.env_for.pop(name, None)
            run.start(name)
        await asyncio.sleep(0.05)


async def _add_operator(env: BenchEnv) -> None:
    conn = await env.db()
    try:  # no password: it sends commands over Kafka, it never logs in
        await conn.execute(
            """INSERT INTO console_users (institution_id, username, password_hash, role)
               VALUES ($1, $2, '!', 'operator')""",
            INSTITUTION,
            OPERATOR,
        )
    finally:
        await conn.close()


async def _bridged_provider(run: Run, provider: str) -> Served:
    """The provider answers over HTTP: the simulator in this process, our bridge in its own."""
    served = await serve_simulator()
    conn = await run.env.db()
    try:
        await conn.execute(
            """UPDATE providers SET integration_mode = 'http', base_url = $2, credentials_ref = NULL
               WHERE provider_id = $1""",
            provider,
            served.base_url,
        )
    finally:
        await conn.close()
    run.env_for["bridge"] = {"PPU_SWITCH_INSTITUTION_ID": SWITCH_ELECTRUM_ID}
    run.start("bridge", "provider-bridge", ("--provider", provider))
    return served
