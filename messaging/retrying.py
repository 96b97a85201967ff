"""Retries of transient failures (tenacity), until they succeed or the worker is asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiokafka.errors
import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from kernel.errors import PpuError
from messaging.dead_letters import DeadLetterUnavailable

T = TypeVar("T")


class BatchTooSlow(Exception):
    """A batch ran past its time bound (well under the poll interval); it is retried in smaller pieces, and a
    single message that is still too slow is retried as it is: slowness is the database's, never dead-lettered."""


# What a single message can cause (bad data the schema let through, a constraint it breaks), or a batch too slow:
# the batch is split and the message at fault dead-lettered once isolated. Anything else is our bug or an outage:
# the worker stops rather than dead-letter valid messages, and resumes from the stored offset once restarted.
MESSAGE_FAULTS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    ValueError,
    BatchTooSlow,
)

# Every error aiokafka flags retriable (NotLeaderForPartitionError while leadership moves or topics are re-applied,
# LeaderNotAvailable, RequestTimedOut, …): its own retries ran out, ours go on until the cluster settles.
KAFKA_RETRIABLE: tuple[type[BaseException], ...] = tuple(
    c
    for c in vars(aiokafka.errors).values()
    if isinstance(c, type) and issubclass(c, KafkaError) and getattr(c, "retriable", False)
)

# Worth waiting out: the database or broker is away, or PostgreSQL asked us to try again.
TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,  # connecting or acquiring timed out (a slow batch is BatchTooSlow, not this)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A connection cut in the middle of an operation can leave asyncpg's protocol state machine confused
    # ("cannot switch to state 15", MagicStack/asyncpg#784); the pool then discards the connection.
    asyncpg.InternalClientError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,  # the server shutting down or restarting ("terminating connection")
    KafkaConnectionError,
    KafkaTimeoutError,  # a send waited out the request timeout (the broker away, or partitions leaderless)
    DeadLetterUnavailable,
    *KAFKA_RETRIABLE,
)


async def retry_until_stopped(
    stop: asyncio.Event, attempt: Callable[[], Awaitable[T]], also: tuple[type[BaseException], ...] = ()
) -> T:
    """Retries TRANSIENT failures (and those in `also`) with jittered backoff until success or `stop`.

    The first try runs outside tenacity: its retry state is a knot of reference cycles (a future, a condition, a
    thread-local, closures), about 35 objects per call left to the cycle collector. Called once per batch, that
    garbage piled up until a collection freed ~45,000 objects at once and stopped the worker for 20-60 ms, the
    slowest batches at 1,000 attempts/s (bench/profiles/20261206T2330Z-gc-pauses.md)."""
    transient = TRANSIENT + also
    try:
        return await attempt()
    except transient:
        if stop.is_set():
            raise
    # The first retry goes at once; tenacity's backoff paces the ones after it.

    def stopped(_: RetryCallState) -> bool:
        return stop.is_set()

    async for tried in AsyncRetrying(
        retry=retry_if_exception_type(transient),
        stop=stopped,
        reraise=True,
        wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.1),
    ):
        with tried:
            return await attempt()
    raise AssertionError("unreachable: tenacity re-raises or returns")


async def patiently(attempt: Callable[[], Awaitable[T]], within: float = 60.0) -> T:
    """Starting up while the database or the broker restarts (refused connections, "the database system is
    shutting down"): waited for, up to `within` seconds, rather than ending the process at once."""
    async for tried in AsyncRetrying(
        retry=retry_if_exception_type((PpuError, *TRANSIENT)),
        stop=stop_after_delay(within),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
        reraise=True,
    ):
        with tried:
            return await attempt()
    raise AssertionError("unreachable: tenacity returns or re-raises")


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Waits `seconds`, or less if `stop` is set meanwhile: the sleep of every loop that runs until asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
