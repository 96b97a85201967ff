"""Outbox relay: publishes outbox rows in id order per lane (so in order per key), deleting them as it does.

Messages fall into lanes by a hash of their key; a row holds one transaction's messages of one lane, in order
(workers/outbox.py, db/migrations/0018_outbox_rows_per_lane.sql). Each cycle, one transaction locks
the lanes this relay holds (its share, workers/relay_lanes.py; a lane another relay is publishing is skipped),
deletes their oldest rows, publishes them with an idempotent producer and acks=all, and commits. A failed publish
rolls the delete back; a relay killed after publishing and before committing publishes those rows again: consumers
dedupe by message id. Several relays share the lanes; each wakes on NOTIFY from the outbox trigger, and polls as a
fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import Span, SpanKind

from kernel import tracing
from kernel.connections import create_pool
from kernel.dbconn import Db
from messaging import metrics
from messaging.retrying import TRANSIENT
from schemas.envelope import CONTENT_TYPE
from workers.failpoints import NONE, Failpoints
from workers.outbox import LANES, Row, unpacked
from workers.relay_lanes import RelayLanes
from workers.relay_publish import publish

CONSTANT_HEADERS = [("content-type", CONTENT_TYPE)]  # on every row, so not stored with each (workers/outbox.py)
log = structlog.get_logger()

# One statement: lock the lanes (skipping those another relay holds), delete their oldest rows, count them per lane.
# Its plan must not depend on the outbox's statistics (TAKE_SETTINGS): they are taken when the outbox is nearly empty,
# just drained, and the table then refills its free space without growing, so PostgreSQL went on believing it held a
# few hundred rows while a backlog of 200,000 built, and sorted every row each cycle: slower as the backlog grew, which
# grew it further (the soak's stalls). The oldest rows are read through the primary key in order, deleted by address.
TAKE = """WITH held AS (SELECT lane FROM outbox_lanes WHERE lane = ANY($1::smallint[]) FOR UPDATE SKIP LOCKED),
             gone AS (DELETE FROM outbox WHERE ctid = ANY(ARRAY(
                          SELECT ctid FROM outbox WHERE lane IN (SELECT lane FROM held)
                          ORDER BY outbox_id LIMIT $2))
                      RETURNING outbox_id, lane, n, topic, key, value, headers, batch),
             counted AS (UPDATE outbox_lanes l SET published = l.published + g.n
                         FROM (SELECT lane, sum(n) AS n FROM gone GROUP BY lane) g WHERE l.lane = g.lane)
          SELECT topic, key, value, headers, batch FROM gone ORDER BY outbox_id"""
# The relay's sessions (its own pool, workers/process.py; set once per session, not per cycle: a round trip of four
# fewer each cycle). The delete need not wait for the disk: if it is lost in a crash, the rows are published again,
# and consumers drop the duplicates by message id (an fsync off every cycle); its lanes' beats are rewritten every few
# seconds anyway. No sequential scan: the plan above whatever the statistics say. Only the relay's statements run in
# these sessions: a worker's own writes must wait for the disk (a decision published from a commit lost in a crash
# would be made again, differently).
RELAY_SESSION = {"synchronous_commit": "off", "enable_seqscan": "off"}
TAKE_ROWS = 64  # rows (transactions' lanes) per cycle


async def open_relay_pool(url: str, server_settings: dict[str, str]) -> asyncpg.Pool:
    """The relay's sessions: the workers' settings and RELAY_SESSION's; one cycle at a time, a beat beside it."""
    return await create_pool(
        url, min_size=1, max_size=2, server_settings={**server_settings, **RELAY_SESSION}, keep_sessions=True
    )


async def relay_once(
    conn: Db,
    producer: AIOKafkaProducer,
    lanes: list[int] | None = None,
    limit: int = TAKE_ROWS,
    failpoints: Failpoints = NONE,
) -> int:
    """One cycle on a session of RELAY_SESSION's settings: at most `limit` rows (each one transaction's messages of
    one lane). Returns the messages published."""
    published, _ = await _cycle(conn, producer, lanes, limit, failpoints)
    return published


async def _cycle(
    conn: Db, producer: AIOKafkaProducer, lanes: list[int] | None, limit: int, failpoints: Failpoints
) -> tuple[int, bool]:
    """`relay_once`, and whether rows may be left: a take of fewer than `limit` rows drained every row committed
    before it (in lanes not held by another relay)."""
    async with conn.transaction():
        rows = await conn.fetch(TAKE, list(range(LANES)) if lanes is None else lanes, limit)
        if not rows:
            return 0, False
        messages = messages_of(rows)
        spans, headers = _publish_spans(messages) if tracing.enabled() else ([], [_headers(m) for m in messages])
        # Every record acknowledged by all in-sync replicas before the delete commits.
        await publish(producer, [(t, k.encode(), v, h) for (t, k, v, _), h in zip(messages, headers, strict=True)])
        tracing.end_all(spans)
        failpoints.hit("after_publish")
    for name, n in Counter(m[0] for m in messages).items():  # a label lookup per topic, not per message
        metrics.PUBLISHED.labels(name).inc(n)
    return len(messages), len(rows) >= limit


def messages_of(rows: list[asyncpg.Record]) -> list[Row]:
    """The rows' messages in order: a packed row's, or the one a row written before migration 0018 holds."""
    messages: list[Row] = []
    for r in rows:
        if r["batch"] is not None:
            messages.extend(unpacked(r["batch"]))
        else:
            messages.append((r["topic"], r["key"], r["value"], r["headers"]))
    return messages


async def unpublished(conn: Db) -> list[Row]:
    """Every message the outbox holds, in the order the relays publish them per lane (for checks and tests)."""
    return messages_of(await conn.fetch("SELECT topic, key, value, headers, batch FROM outbox ORDER BY outbox_id"))


def _headers(message: Row) -> list[tuple[str, bytes]]:
    extra = message[3]
    return CONSTANT_HEADERS if not extra else CONSTANT_HEADERS + [(k, v.encode()) for k, v in extra]


def _publish_spans(messages: list[Row]) -> tuple[list[Span], list[list[tuple[str, bytes]]]]:
    """Tracing on: a span per traced message, child of the span that wrote it; the record carries the new span."""
    spans, headers = [], []
    for m in messages:
        carried = _headers(m)
        if not any(k == "traceparent" for k, _ in carried):
            headers.append(carried)
            continue
        span = tracing.start(f"publish {m[0]}", tracing.extract(carried), SpanKind.PRODUCER, {"topic": m[0]})
        spans.append(span)
        kept = [(k, v) for k, v in carried if k not in tracing.TRACE_HEADERS]
        headers.append(kept + [(k, v.encode()) for k, v in tracing.child_headers(span).items()])
    return spans, headers


async def run_relay(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    stop: asyncio.Event,
    listen_url: str,
    poll_seconds: float = 1.0,
    failpoints: Failpoints = NONE,
    member: str | None = None,
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

    lanes = RelayLanes(member or f"relay-{uuid.uuid4().hex[:12]}")
    try:
        while not stop.is_set():
            await listen()
            wake.clear()
            try:
                async with pool.acquire() as conn:
                    _, more = await _cycle(conn, producer, await lanes.mine(conn), TAKE_ROWS, failpoints)
            except TRANSIENT as e:  # the rows stay unsent and go out again: duplicates are harmless
                log.warning("relay cannot reach the database or the broker", error=repr(e))
                more = False
            metrics.LAST_PROGRESS.labels("outbox-relay").set_to_current_time()
            # Drained: what commits from here on notifies after the `wake.clear()` above, so the wait below returns
            # at once for it. Not taking again to find nothing halved the relay's cycles (and their round trips) at a
            # steady rate, where nearly every cycle drains.
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(wake, stop), poll_seconds)
    finally:
        with contextlib.suppress(Exception):  # the others take our lanes now rather than when our beat is old
            async with pool.acquire(timeout=5) as conn:
                await lanes.leave(conn)
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
