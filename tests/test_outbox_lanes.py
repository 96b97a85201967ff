"""The outbox scales out: relays share its lanes, a lane another relay is publishing is skipped, rows go once and in
order per key, and are deleted as they are published. A row holds one transaction's messages of one lane; rows of one
message each, written before migration 0018, go out too, before the newer rows of their keys."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from kernel.connections import create_pool, started_producer
from kernel.settings import Settings
from kernel.topics import topic
from schemas.envelope import Encoded
from tests.harness import plan_of
from workers.outbox import LANES, Outbox, lane_of
from workers.outbox_relay import TAKE, open_relay_pool, relay_once, run_relay
from workers.relay_lanes import RelayLanes

KEYS, PER_KEY, LEGACY = 40, 60, 10
SCAN = re.compile(r"Seq Scan on outbox\b(?!_lanes)")
LANE_IN_SQL = "get_byte(decode(md5(key), 'hex'), 0) & 15"  # as db/migrations/0018_outbox_rows_per_lane.sql


def _value(k: int, s: int) -> bytes:
    return json.dumps({"k": k, "seq": s}).encode()


async def _write(db: asyncpg.Connection, settings: Settings) -> None:
    """KEYS keys, each key's sequence numbers rising in outbox order: the first LEGACY as rows of one message each,
    as written before migration 0018 (their lanes as it moved them), then one transaction per sequence number, as
    the workers write (`Outbox.flush`: a row per lane)."""
    legacy = [(_topic(settings), f"k{k:03d}", _value(k, s)) for s in range(LEGACY) for k in range(KEYS)]
    await db.executemany(
        f"INSERT INTO outbox (topic, key, value, lane) SELECT t, key, v, {LANE_IN_SQL} "
        "FROM (VALUES ($1, $2, $3::bytea)) AS u(t, key, v)",
        legacy,
    )
    for s in range(LEGACY, PER_KEY):
        out = Outbox(settings.topic_prefix)
        for k in range(KEYS):
            out.emit("lookup_requests", Encoded(f"k{k:03d}", None, _value(k, s)), provider_id="p1")
        async with db.transaction():
            await out.flush(db)


async def test_the_writers_lane_is_the_migrations(db: asyncpg.Connection) -> None:
    """Rows written before 0018 were moved to the lanes the writer now computes: one key, one lane, in both."""
    keys = [f"0{n:010d}" for n in range(0, 10_000_000_000, 7_777_777)] + ["", "k", "é-ü", "x" * 300]
    rows = await db.fetch(f"SELECT key, {LANE_IN_SQL} AS lane FROM unnest($1::text[]) AS u(key)", keys)
    in_sql = {r["key"]: r["lane"] for r in rows}
    assert in_sql == {k: lane_of(k) for k in keys}
    assert set(in_sql.values()) == set(range(LANES)), "every lane used"


async def test_relays_split_the_lanes_between_them(db: asyncpg.Connection) -> None:
    a, b, c = RelayLanes("relay-a"), RelayLanes("relay-b"), RelayLanes("relay-c")
    assert await a.mine(db) == list(range(LANES))  # alone: every lane
    await b.mine(db)
    a._next_beat = 0.0  # beat again now rather than in BEAT_SECONDS
    first, second = await a.mine(db), await b.mine(db)
    assert set(first).isdisjoint(second) and sorted(first + second) == list(range(LANES))
    await c.mine(db)
    a._next_beat = b._next_beat = 0.0
    shares = [await r.mine(db) for r in (a, b, c)]
    assert sorted(lane for share in shares for lane in share) == list(range(LANES)) and {len(s) for s in shares} == {
        5,
        6,
    }
    await c.leave(db)
    a._next_beat = b._next_beat = 0.0
    assert sorted(await a.mine(db) + await b.mine(db)) == list(range(LANES))


def _counting(send: Callable[..., Awaitable[Any]], sends: dict[str, int], member: str) -> Callable[..., Awaitable[Any]]:
    """Counts the records of each batch the relay sends (workers/relay_publish.py)."""

    async def counted(batch: Any, *args: Any, **kwargs: Any) -> Any:
        sends[member] += batch.record_count()
        return await send(batch, *args, **kwargs)

    return counted


def _topic(settings: Settings) -> str:
    return topic("lookup_requests").name(settings.topic_prefix, provider_id="p1")


async def test_the_relays_read_ignores_statistics_of_a_nearly_empty_outbox(
    db: asyncpg.Connection, settings: Settings
) -> None:
    """The soak's stall: statistics from a just-drained outbox (500 rows over many pages) while a backlog refills its
    free space. The relay's read must stay on the primary key and delete by address, not scan and sort every row."""
    filler = (
        "INSERT INTO outbox (topic, key, value, lane) "
        "SELECT 't', 'k' || g, convert_to(repeat('x', 500), 'UTF8'), g % 16 "
    )
    await db.execute(filler + "FROM generate_series(1, 20000) g")
    await db.execute("DELETE FROM outbox WHERE outbox_id <= (SELECT max(outbox_id) - 500 FROM outbox)")
    await db.execute("VACUUM ANALYZE outbox")  # the last 500 rows keep the pages: 500 rows over many pages
    await db.execute(filler + "FROM generate_series(1, 20000) g")  # the backlog, in the free space
    assert await db.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'outbox'") == 500

    # The trap is real with these statistics: in a session without the relay's settings PostgreSQL scans the table.
    async with db.transaction():
        assert SCAN.search(await plan_of(db, TAKE, list(range(LANES)), 1000))
    assert settings.database_url is not None
    relay = await open_relay_pool(settings.database_url, {})  # the pool the relay's process opens
    try:
        async with relay.acquire() as conn, conn.transaction():
            taken = await plan_of(conn, TAKE, list(range(LANES)), 1000)
            assert await conn.fetchval("SHOW synchronous_commit") == "off"  # the cycle's delete waits for no fsync
    finally:
        await relay.close()
    assert not SCAN.search(taken) and "Index Scan using outbox_pkey" in taken and "Tid Scan" in taken


async def test_a_lane_held_by_another_relay_is_skipped(
    db: asyncpg.Connection, settings: Settings, topics: list[str]
) -> None:
    await _write(db, settings)
    held = sorted({lane_of(f"k{k:03d}") for k in range(KEYS)})[:3]
    assert settings.kafka_bootstrap_servers is not None and settings.database_url is not None
    other = await asyncpg.connect(settings.database_url)
    try:
        async with other.transaction(), started_producer(settings.kafka_bootstrap_servers) as producer:
            # Another relay mid-cycle on three lanes.
            await other.execute("SELECT 1 FROM outbox_lanes WHERE lane = ANY($1::smallint[]) FOR UPDATE", held)
            sent = 0
            while n := await relay_once(db, producer, limit=500):
                sent += n
        left = {r["lane"] for r in await db.fetch("SELECT DISTINCT lane FROM outbox")}
        assert left == set(held)
        assert sent == KEYS * PER_KEY - await db.fetchval("SELECT sum(n) FROM outbox")
        assert await db.fetchval("SELECT sum(published) FROM outbox_lanes") == sent
    finally:
        await other.close()


async def test_two_relays_publish_every_row_once_in_order_per_key(
    db: asyncpg.Connection, settings: Settings, topics: list[str]
) -> None:
    assert settings.kafka_bootstrap_servers is not None and settings.database_url is not None
    name = _topic(settings)
    await _write(db, settings)
    stop = asyncio.Event()
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    seen: dict[int, list[int]] = {k: [] for k in range(KEYS)}
    consumer = AIOKafkaConsumer(name, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest")
    try:
        async with (
            started_producer(settings.kafka_bootstrap_servers) as p1,
            started_producer(settings.kafka_bootstrap_servers) as p2,
        ):
            # Both alive from the first beat, and each producer's sends counted: both relays publish.
            await db.executemany("INSERT INTO outbox_relays VALUES ($1, now())", [("relay-1",), ("relay-2",)])
            sends = {"relay-1": 0, "relay-2": 0}
            for member, producer in (("relay-1", p1), ("relay-2", p2)):
                producer.send_batch = _counting(producer.send_batch, sends, member)
            relays = [
                asyncio.ensure_future(run_relay(pool, p, stop, settings.database_url, member=m))
                for m, p in (("relay-1", p1), ("relay-2", p2))
            ]
            await consumer.start()
            async with asyncio.timeout(60):
                while sum(map(len, seen.values())) < KEYS * PER_KEY:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for r in records:
                            m = json.loads(r.value or b"")
                            seen[m["k"]].append(m["seq"])
            members = await db.fetchval("SELECT count(*) FROM outbox_relays")
            stop.set()
            await asyncio.gather(*relays)
    finally:
        await consumer.stop()
        await pool.close()
    assert members == 2 and min(sends.values()) > 0, f"both relays published: {sends}"
    assert all(s == list(range(PER_KEY)) for s in seen.values()), "each key's rows once, in order"
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert await db.fetchval("SELECT sum(published) FROM outbox_lanes") == KEYS * PER_KEY
    assert await db.fetchval("SELECT count(*) FROM outbox_relays") == 0, "a relay that stops leaves"


async def test_a_relay_that_drained_the_lanes_waits_for_the_next_commit(
    db: asyncpg.Connection, settings: Settings, topics: list[str]
) -> None:
    """At a steady rate nearly every cycle drains the lanes: the relay then waits for the next commit's notification
    instead of taking again to find nothing (half its cycles and their round trips). It never waits on the poll for a
    row committed meanwhile: with the poll at a minute, every row goes out at once."""
    assert settings.kafka_bootstrap_servers is not None and settings.database_url is not None
    writes, stop = 15, asyncio.Event()
    takes: list[int] = []
    pool = await open_relay_pool(settings.database_url, {})
    async with pool.acquire() as conn:  # the pool's one session: the relay runs its cycles on it
        conn.add_query_logger(lambda q: takes.append(1) if q.query == TAKE else None)
    consumer = AIOKafkaConsumer(
        _topic(settings), bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with started_producer(settings.kafka_bootstrap_servers) as producer:
            relay = asyncio.ensure_future(run_relay(pool, producer, stop, settings.database_url, poll_seconds=60))
            await asyncio.sleep(1)  # listening, and its first cycle found nothing
            received = 0
            async with asyncio.timeout(30):
                for s in range(writes):
                    out = Outbox(settings.topic_prefix)
                    out.emit("lookup_requests", Encoded("k000", None, _value(0, s)), provider_id="p1")
                    async with db.transaction():
                        await out.flush(db)
                    while received <= s:
                        received += sum(map(len, (await consumer.getmany(timeout_ms=200)).values()))
            stop.set()
            await relay
    finally:
        await consumer.stop()
        await pool.close()
    assert received == writes
    # One take per commit, and the first: the code before took twice per commit.
    assert writes <= len(takes) <= writes + 3, f"{len(takes)} takes for {writes} commits"
