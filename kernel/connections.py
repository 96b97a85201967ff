"""Settings → addresses → database pools and Kafka clients. Nothing here runs at import time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer

from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.stack_state import StackState

C = TypeVar("C")


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap_servers: str
    database_url: str


def endpoints(settings: Settings) -> Endpoints:
    """Environment first; otherwise the local stack that `ppu stack up` recorded."""
    kafka, db = settings.kafka_bootstrap_servers, settings.database_url
    if kafka is None or db is None:
        state = StackState.load(settings.state_dir)
        if state is None:
            missing = " and ".join(
                n for n, v in (("KAFKA_BOOTSTRAP_SERVERS", kafka), ("DATABASE_URL", db)) if v is None
            )
            raise PpuError(f"{missing} not set and no local stack: run `ppu stack up` or set them")
        kafka, db = kafka or state.kafka_bootstrap_servers, db or state.database_url
    return Endpoints(kafka, db)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(url: str) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, TimeoutError) as e:
        raise PpuError(f"cannot reach PostgreSQL at {_redact(url)}: {e}") from None
    await _init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A released connection's session kept as it is (asyncpg still rolls back a transaction left open)."""


async def create_pool(
    url: str,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
    keep_sessions: bool = False,
) -> asyncpg.Pool:
    """`keep_sessions`: no reset statement on release. asyncpg's default runs `pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL` whenever a connection goes back: for the workers, which take one for each batch and relay
    cycle, a round trip of every batch. Only for code that leaves no session state behind (the workers: transaction-
    scoped settings and locks only; db/partitions.py resets the one setting it makes)."""
    try:
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            timeout=10,
            server_settings=server_settings,
            reset=_keep_session if keep_sessions else None,
        )
    except (OSError, TimeoutError) as e:
        raise PpuError(f"cannot reach PostgreSQL at {_redact(url)}: {e}") from None


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://…@{rest.split('@', 1)[1]}"


def producer(bootstrap: str, **extra: object) -> AIOKafkaProducer:
    """Idempotent, acks=all: a retry never duplicates; an acknowledged send is on every in-sync replica."""
    options: dict[str, object] = {"linger_ms": 2, "max_batch_size": 262144, "request_timeout_ms": 30000, **extra}
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", **options)


@asynccontextmanager
async def kafka_client(
    client: C, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]], bootstrap: str
) -> AsyncIterator[C]:
    """A started aiokafka client, stopped on exit; failing to start is one readable PpuError."""
    try:
        await start()
    except Exception as e:
        await stop()
        raise PpuError(f"cannot reach Kafka at {bootstrap}: {e}") from None
    try:
        yield client
    finally:
        await stop()


@asynccontextmanager
async def started_producer(bootstrap: str, **extra: object) -> AsyncIterator[AIOKafkaProducer]:
    p = producer(bootstrap, **extra)
    async with kafka_client(p, p.start, p.stop, bootstrap):
        yield p


@asynccontextmanager
async def connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """One database connection for a one-shot command."""
    conn = await connect(endpoints(settings).database_url)
    try:
        yield conn
    finally:
        await conn.close()
