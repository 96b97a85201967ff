"""Two processes of one worker in one consumer group, members joining and dying mid-load: every message is
applied exactly once (the database-stored, fenced offsets decide, not Kafka's commits)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from kernel.settings import Settings
from kernel.topics import topic
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from tests.conftest import ROOT, cli_env
from tests.harness import PROVIDERS, applied, eventually, running, seed_reference

N = 600


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    # No Kafka commit hint before the kill: the survivor's first fetch starts at the log's start, before its claim
    # seeks to the stored offsets (a race that once stored an offset back; CI, stop 39).
    env = {
        **cli_env(settings),
        "PPU_BATCH_MAX_RECORDS": "15",
        "PPU_COMMIT_HINT_EVERY_MS": "600000",
        "PPU_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ppu.cli", "worker", "lookup"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_members_join_and_die_during_load_and_every_attempt_is_applied_once(
    settings: Settings, topics: list[str], db: asyncpg.Connection, tmp_path: Path
) -> None:
    await seed_reference(db)
    first = _worker(settings, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with running(settings, names=()) as system:  # no in-process workers: only the two processes
            events = [
                PurchaseAttempted.new(
                    PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=f"05{i:08d}", institution_id="i1"),
                    source="test",
                    correlationid="load",
                )
                for i in range(N)
            ]
            await asyncio.gather(*[system.send("purchase_attempts", e) for e in events])
            await eventually(
                lambda: applied(db, "lookup", N // 5),
                within=60,
                what="the first member to make progress",
            )
            second = _worker(settings, tmp_path / "second.log")  # joins: rebalance in the middle of the load
            await eventually(
                lambda: applied(db, "lookup", N // 2),
                within=60,
                what="progress after the join",
            )
            first.send_signal(signal.SIGKILL)  # dies mid-batch: its open transaction rolls back
            await eventually(
                lambda: applied(db, "lookup", N),
                within=90,
                what="every attempt handled by the survivor",
            )
            # Nothing left in flight: the group's stored offsets reached the end of every partition.
            await eventually(lambda: _stored_to_end(settings, db), within=30, what="offsets stored to the end")
    except AssertionError as e:
        logs = "".join(f.read_text()[-3000:] for f in sorted(tmp_path.glob("*.log")))
        raise AssertionError(f"{e}\nworker logs:\n{logs}") from None
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(20)
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts") == N
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts WHERE round_id IS NULL") == 0
    assert await db.fetchval("SELECT count(*) FROM lookup_rounds") == N
    assert await db.fetchval("SELECT count(*) FROM lookups") == N * len(PROVIDERS)
    written = (
        "SELECT (SELECT coalesce(sum(n), 0) FROM outbox) + (SELECT sum(published) FROM outbox_lanes)"  # waiting, sent
    )
    assert await db.fetchval(written) == N * len(PROVIDERS)
    assert await db.fetchval("SELECT max(epoch) FROM consumer_offsets") >= 2, "partitions changed hands"


@dataclass
class _Offsets:
    """The log's ends and the stored next offsets per partition; true once every stored offset is at its end (the
    repr says which are not, when the wait times out)."""

    ends: dict[int, int]
    stored: dict[int, int]

    def __bool__(self) -> bool:
        return sum(self.ends.values()) == N and all(self.stored.get(p, 0) == end for p, end in self.ends.items())


async def _stored_to_end(settings: Settings, db: asyncpg.Connection) -> _Offsets:
    name = topic("purchase_attempts").name(settings.topic_prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(topic("purchase_attempts").partitions)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    rows = await db.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
        settings.topic_prefix + "ppu-lookup-worker",
        name,
    )
    return _Offsets({tp.partition: end for tp, end in ends.items()}, {r["partition"]: r["next_offset"] for r in rows})
