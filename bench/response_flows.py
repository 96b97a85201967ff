"""The response flow under load (answers in, support committed): its throughput from a backlog and its latency at a
paced rate."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.env import PROVIDERS, BenchEnv, start_workers, stop
from bench.measure import paced, percentiles, produce
from bench.process_usage import RssSampler
from kernel.ids import new_id
from kernel.topics import topic
from schemas.lookup import LookupResponded, LookupRespondedData
from workers.registry import consumer_flow


async def _preload_lookups(env: BenchEnv, n: int, meters: int) -> list[tuple[uuid.UUID, str, str]]:
    # Round and lookup ids are the system's own UUIDv7 (kernel/ids.py): the responses consumer reads lookups
    # by id within the live window's partitions, as it reads those the lookup worker made.
    rows = [(new_id(), f"06{i % meters:08d}", PROVIDERS[i % 5]) for i in range(n)]
    conn = await env.db()
    try:
        now = datetime.now(UTC)
        rounds = [(new_id(), m) for _, m, _ in rows]
        await conn.copy_records_to_table(
            "lookup_rounds",
            columns=["round_id", "meter_number", "reason", "opened_at", "deadline", "closed_at", "providers_asked"],
            records=[
                (r, m, "routine", now, now + timedelta(minutes=5), now, [p])
                for (r, m), (_, _, p) in zip(rounds, rows, strict=True)
            ],
        )
        await conn.copy_records_to_table(
            "lookups",
            columns=["lookup_id", "round_id", "meter_number", "provider_id", "sent_at"],
            records=[(lk, r, m, p, now) for (lk, m, p), (r, _) in zip(rows, rounds, strict=True)],
        )
    finally:
        await conn.close()
    return rows


def _response(lookup_id: uuid.UUID, meter: str, provider: str, i: int) -> tuple[bytes, bytes]:
    data = LookupRespondedData(
        lookup_id=lookup_id,
        provider_id=provider,
        meter_number=meter,
        status="supported" if i % 2 else "not_supported",
        responded_at=datetime.now(UTC),
    )
    event = LookupResponded.new(data, source="bench", correlationid=str(lookup_id))
    return meter.encode(), event.encode()


async def response_flow(env: BenchEnv, n: int, meters: int) -> tuple[float, RssSampler]:
    rows = await _preload_lookups(env, n, meters)
    responses = (_response(lk, m, p, i) for i, (lk, m, p) in enumerate(rows))
    await produce(
        env.bootstrap, topic("lookup_responses").name(env.settings.topic_prefix), responses, n, "response flow: load"
    )
    procs = start_workers(env, "responses")
    sampler, done = RssSampler([p.pid for p in procs]), asyncio.Event()
    sampling = asyncio.ensure_future(sampler.run(done))
    conn = await env.db()
    marks: dict[int, float] = {}
    group = consumer_flow("responses", env.settings).group_id
    try:
        async with asyncio.timeout(600):
            while True:
                # Answers applied: the offsets the consumer stored with them, in the same transaction (the topic holds
                # only these responses). Counting answered lookups instead scanned every lookup 20 times a second,
                # 12-17 ms each at 120,000: a quarter of a core of PostgreSQL taken from the flow it measured.
                answered = await conn.fetchval(
                    "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM consumer_offsets WHERE group_id = $1", group
                )
                for pct in (5, 95):
                    if answered >= n * pct / 100 and pct not in marks:
                        marks[pct] = time.monotonic()
                if answered >= n:
                    break
                await asyncio.sleep(0.05)
        recorded = await conn.fetchval("SELECT count(*) FROM lookups WHERE responded_at IS NOT NULL")
        if recorded != n:  # applied, yet not recorded: rejected to the dead-letter topic
            raise RuntimeError(f"the response flow recorded {recorded} of {n} answers")
    finally:
        await conn.close()
        done.set()
        await sampling
        stop(procs)
    return n * 0.9 / (marks[95] - marks[5]), sampler


async def response_latency(env: BenchEnv, rate: float, seconds: float, meters: int) -> dict[str, float]:
    """From each response's send to its status being committed (seen by polling every 5 ms, a sample of 1 in 5)."""
    rows = await _preload_lookups(env, int(rate * seconds), meters)
    procs = start_workers(env, "responses")
    conn = await env.db()
    seen: dict[uuid.UUID, float] = {}
    try:
        await asyncio.sleep(8)
        queue = iter(enumerate(rows))
        made = 0  # responses handed to the sender so far, in the order of `rows`

        def make() -> tuple[bytes, bytes, str]:
            nonlocal made
            i, (lk, m, p) = next(queue)
            made = i + 1
            key, value = _response(lk, m, p, i)
            return key, value, str(lk)

        sender = asyncio.ensure_future(
            paced(env.bootstrap, topic("lookup_responses").name(env.settings.topic_prefix), make, rate, seconds)
        )
        sample = [(i, lk) for i, (lk, _, _) in enumerate(rows) if i % 5 == 0]
        while len(seen) < len(sample) and not (sender.done() and time.time() - max(seen.values(), default=0) > 10):
            # Only those sent: asking for the whole sample every 5 ms (6,000 ids at first) was a load of its own on
            # the 2 cores the flow runs on, and put the measuring in the figure.
            pending = [lk for i, lk in sample if i < made and lk not in seen]
            now = time.time()
            for r in await conn.fetch(
                "SELECT lookup_id FROM lookups WHERE lookup_id = ANY($1::uuid[]) AND responded_at IS NOT NULL", pending
            ):
                seen[r["lookup_id"]] = now
            await asyncio.sleep(0.005)
        sent = await sender
    finally:
        await conn.close()
        stop(procs)
    return {k: v * 1000 for k, v in percentiles([seen[lk] - sent[str(lk)] for lk in seen]).items()}
