"""Watches the flows' progress while a scenario runs (how long after each fault until every stage moves again),
and waits for them to settle once the load is sent."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.env import BenchEnv
from kernel.topics import topic
from messaging.retrying import pause
from workers.registry import CONSUMERS, consumer_flow

# One counter per stage, each moved by one worker only (decisions are made by the lookup worker and, at a
# round's deadline, the sweeper: not a sign of the lookup worker's progress); a stage that moved has resumed.
COUNTERS = """SELECT (SELECT count(*) FROM purchase_attempts),
                     (SELECT count(*) FROM lookups WHERE responded_at IS NOT NULL),
                     (SELECT sum(published) FROM outbox_lanes),
                     (SELECT count(*) FROM audit_log WHERE action = 'confirm_support')"""
STAGES = ("attempts", "answers", "published", "commands")
APPLICATION = "faults-observer"  # faults that cut connections spare this one


class ProgressMonitor:
    def __init__(self, env: BenchEnv, every: float = 0.25) -> None:
        self.env, self.every = env, every
        self.samples: list[tuple[float, tuple[int, ...]]] = []

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                conn = await self.env.db()
                await conn.execute(f"SET application_name = '{APPLICATION}'")
                try:
                    while not stop.is_set():
                        row = await conn.fetchrow(COUNTERS)
                        assert row is not None
                        self.samples.append((loop.time(), tuple(row)))
                        await pause(stop, self.every)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            except Exception:  # whatever the restarting database raises, it is the fault: read on
                await asyncio.sleep(0.5)

    def recovery(self, fault_at: float) -> float:
        """Seconds from `fault_at` until every stage with work left had moved past its count at that moment
        (0 for a stage that had nothing left to do). The count at that moment is the first one read after it:
        an earlier one would credit work committed just before the fault as progress after it."""
        after = [values for at, values in self.samples if at >= fault_at]
        if not after:
            return float("inf")
        start, final = after[0], after[-1]
        waits = [0.0]
        for stage in range(len(STAGES)):
            if final[stage] > start[stage]:
                waits.append(
                    next(at for at, values in self.samples if at > fault_at and values[stage] > start[stage]) - fault_at
                )
        return max(waits)


async def unapplied(env: BenchEnv, conn: asyncpg.Connection) -> int:
    """Records on the consumed topics that their consumer group has not applied yet: the end offsets in Kafka
    against the offsets the workers stored in PostgreSQL. Zero means no consumer is stuck or behind."""
    groups = [consumer_flow(name, env.settings) for name in CONSUMERS]
    consumer = AIOKafkaConsumer(bootstrap_servers=env.bootstrap)
    await consumer.start()
    try:
        ends: dict[tuple[str, str, int], int] = {}
        for flow in groups:
            spec = topic(flow.topic_key)  # the partition count topics.yaml gives (`ppu topics check` holds to it)
            partitions = [TopicPartition(spec.name(env.settings.topic_prefix), p) for p in range(spec.partitions)]
            for tp, end in (await consumer.end_offsets(partitions)).items():
                ends[(flow.group_id, tp.topic, tp.partition)] = end
    finally:
        await consumer.stop()
    stored = {
        (r["group_id"], r["topic"], r["partition"]): max(r["next_offset"], 0)
        for r in await conn.fetch("SELECT group_id, topic, partition, next_offset FROM consumer_offsets")
    }
    return sum(end - stored.get(key, 0) for key, end in ends.items())


async def every_attempt_decided(env: BenchEnv, expected: set[str], within: float) -> float:
    """Waits until every attempt is decided, every consumed record applied and the outbox empty; returns when
    that was (inf: not within)."""
    loop = asyncio.get_running_loop()
    conn = await env.db()
    try:
        deadline = loop.time() + within
        while loop.time() < deadline:
            decided = await conn.fetchval("SELECT count(*) FROM routing_decisions")
            unsent = await conn.fetchval("SELECT coalesce(sum(n), 0) FROM outbox")  # messages, not rows
            if decided >= len(expected) and unsent == 0 and await unapplied(env, conn) == 0:
                at = loop.time()
                await asyncio.sleep(2)  # late duplicates, if any, would land now
                return at
            await asyncio.sleep(0.25)
        return float("inf")
    finally:
        await conn.close()


async def drained(env: BenchEnv, within: float = 30) -> None:
    """Waits (at most `within` seconds) until the outbox is empty: the relay's last rows are out."""
    conn = await env.db()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM outbox"):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
