"""Outbox relay: publishes outbox rows in id order (so in order per key), then marks them sent.

One relay publishes at a time (a transaction-scoped advisory lock), with an idempotent producer and
acks=all. It wakes on NOTIFY from the outbox trigger, and polls as a fallback. A relay killed after
publishing and before marking publishes those rows again: consumers dedupe by message id.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import Span, SpanKind

from kernel import tracing
from kernel.dbconn import Db
from messaging import metrics
from messaging.retrying import TRANSIENT
from workers.failpoints import NONE, Failpoints

LOCK_KEY = 7_413_002  # arbitrary, fixed: the advisory lock that makes one relay active
log = structlog.get_logger()


async def relay_once(conn: Db, producer: AIOKafkaProducer, limit: int = 1000, failpoints: Failpoints = NONE) -> int:
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
            return 0
        # Marking rows sent need not wait for the disk: if the mark is lost in a crash, the rows are published
        # again, and consumers drop the duplicates by message id. It takes an fsync off every relay cycle.
        await conn.execute("SET LOCAL synchronous_commit = off")
        rows = await conn.fetch(
            """SELECT outbox_id, topic, key, value, headers FROM outbox WHERE sent_at IS NULL
               ORDER BY outbox_id LIMIT $1""",
            limit,
        )
        if not rows:
            return 0
        spans, headers = _publish_spans(rows) if tracing.enabled() else ([], [r["headers"] for r in rows])
        pending = [
            await producer.send(
                r["topic"],
                value=r["value"],
                key=r["key"].encode(),
                headers=[(k, v.encode()) for k, v in h],
            )
            for r, h in zip(rows, headers, strict=True)
        ]
        await asyncio.gather(*pending)  # every send acknowledged by all in-sync replicas
        tracing.end_all(spans)
        failpoints.hit("after_publish")
        await conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE outbox_id = ANY($1::bigint[])",
            [r["outbox_id"] for r in rows],
        )
    for r in rows:
        metrics.PUBLISHED.labels(r["topic"]).inc()
    return len(rows)


def _publish_spans(rows: list[asyncpg.Record]) -> tuple[list[Span], list[list[list[str]]]]:
    """Tracing on: a span per traced row, child of the span that wrote it; the record carries the new span."""
    spans, headers = [], []
    for r in rows:
        carried = [(k, v.encode()) for k, v in r["headers"]]
        if not any(k == "traceparent" for k, _ in carried):
            headers.append(r["headers"])
            continue
        span = tracing.start(
            f"publish {r['topic']}", tracing.extract(carried), SpanKind.PRODUCER, {"topic": r["topic"]}
        )
        spans.append(span)
        kept = [[k, v] for k, v in r["headers"] if k not in tracing.TRACE_HEADERS]
        headers.append(kept + [[k, v] for k, v in tracing.child_headers(span).items()])
    return spans, headers


async def run_relay(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    stop: asyncio.Event,
    listen_url: str,
    poll_seconds: float = 1.0,
    failpoints: Failpoints = NONE,
) -> None:
    wake = asyncio.Event()

    def notified(*_: object) -> None:
        wake.set()

    listener: asyncpg.Connection | None = None

    async def listen() -> None:
        """(Re)opens the LISTEN connection (its own, not the pool's) when it is gone, e.g. after a database
        restart; until it is back, the relay polls."""
        nonlocal listener
        if listener is not None and not listener.is_closed():
            return
        try:
            listener = await asyncpg.connect(listen_url, timeout=5)
            await listener.add_listener("outbox", notified)
        except TRANSIENT as e:
            listener = None
            log.warning("relay cannot listen, polling instead", error=str(e))

    purge_every, loops = 600, 0
    try:
        while not stop.is_set():
            await listen()
            wake.clear()
            try:
                async with pool.acquire() as conn:
                    sent = await relay_once(conn, producer, failpoints=failpoints)
                    loops += 1
                    if loops % purge_every == 0:
                        await conn.execute("DELETE FROM outbox WHERE sent_at < now() - interval '1 hour'")
            except TRANSIENT as e:  # the rows stay unsent and go out again: duplicates are harmless
                log.warning("relay cannot reach the database or the broker", error=repr(e))
                sent = 0
            metrics.LAST_PROGRESS.labels("outbox-relay").set_to_current_time()
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(wake, stop), poll_seconds)
    finally:
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
