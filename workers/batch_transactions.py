"""Batches applied as units of work: each in one PostgreSQL transaction, or not at all.

Inside it, in order: fence the partitions (only the member that last claimed a partition may store its offset) and
mark the message ids in the inbox, in one statement; refuse a batch that starts past the stored offset (the
transaction is redone without it, its marks gone); drop records applied before and ids already in the inbox; run
the handler, dead-letter what failed to decode and what the handler rejects (each write acknowledged
before the offsets move), then in one statement the writes the handler deferred, the outbox and the next offsets.
The handler sees only its `UnitOfWork` (workers/unit_of_work.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeAlias

import asyncpg
import structlog
from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry.trace import Span, SpanKind

from kernel import tracing
from messaging.dead_letters import Failure
from messaging.inbound import Decoded, Inbound, Item
from messaging.retrying import BatchTooSlow
from schemas.envelope import Envelope
from workers.failpoints import Failpoints
from workers.group_progress import NEVER, GroupProgress
from workers.unit_of_work import Handler, UnitOfWork

log = structlog.get_logger()
Record: TypeAlias = ConsumerRecord[bytes, bytes]


class BatchTransactions:
    """Applies batches of one consumer flow, each as one unit of work."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        progress: GroupProgress,
        handler: Handler,
        topic_prefix: str,
        dead_letter: Callable[[Record, Failure], Awaitable[None]],
        log_starts: Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]],
        handler_timeout_s: float,
        failpoints: Failpoints,
        inbox: bool = True,
    ) -> None:
        self.pool, self.progress, self.handler, self.topic_prefix = pool, progress, handler, topic_prefix
        self.dead_letter, self.log_starts = dead_letter, log_starts
        self.handler_timeout_s, self.failpoints, self.inbox = handler_timeout_s, failpoints, inbox
        self.dead_lettered: set[tuple[str, int, int]] = set()  # acknowledged, in a batch not yet committed
        self.starts: dict[TopicPartition, int] = {}  # where a partition never stored begins (at our claim)

    async def apply(self, items: dict[TopicPartition, list[Item]]) -> tuple[dict[TopicPartition, int], int, int]:
        """One transaction; returns the next offset stored per partition (fenced partitions are absent), and how
        many messages were applied and rejected."""
        spans: list[Span] = []  # tracing on: one per message, ended when its batch is done
        try:
            return await self._apply(items, spans)
        finally:
            tracing.end_all(spans)

    async def _apply(
        self, items: dict[TopicPartition, list[Item]], spans: list[Span]
    ) -> tuple[dict[TopicPartition, int], int, int]:
        while True:
            try:
                return await self._apply_once(items, spans)
            except _Gap as gap:  # rolled back, inbox marks included: applied without those partitions
                items = {tp: tp_items for tp, tp_items in items.items() if tp not in gap.partitions}

    async def _apply_once(
        self, items: dict[TopicPartition, list[Item]], spans: list[Span]
    ) -> tuple[dict[TopicPartition, int], int, int]:
        async with self.pool.acquire() as conn, conn.transaction():
            # The fence and the inbox in one round trip. A record that failed to decode is marked too, by an id from
            # its place in the log: after the fence, a record of a partition we lost, or one read again after a
            # re-seek, is not dead-lettered twice, by any member.
            # A flow without the inbox (workers/registry.py) marks only those; its messages all count as new.
            marks = list(_marks(items, self.inbox))
            owned, new, now = await self.progress.fence_and_mark(conn, list(items), marks)
            if not self.inbox:
                new.update(ev.id for tp_items in items.values() for _, ev in tp_items if isinstance(ev, Envelope))
            if len(owned) < len(items):
                lost = [str(tp) for tp in items if tp not in owned]
                log.warning("fenced: partitions lost to another member", group=self.progress.group_id, lost=lost)
            held = set(owned)
            await self._refuse_gaps(items, owned)
            if len(owned) < len(held):  # rare (a position reset racing our claim): their marks must not stay
                raise _Gap(held - set(owned))
            fresh: list[Decoded] = []
            failed: list[tuple[Record, Failure]] = []
            for tp, tp_items in items.items():
                for rec, ev in tp_items if tp in owned else []:
                    if rec.offset < owned[tp] or ev is None:
                        continue  # applied before, or dead-lettered already
                    if isinstance(ev, Failure):
                        failed.append((rec, ev))
                    elif ev.id in new:
                        new.discard(ev.id)  # a duplicate inside the batch counts once
                        fresh.append((tp, (rec, ev)))
            # The writes go out now and are awaited just before the offsets are stored (their round trip overlaps
            # the handler's work); if one fails the transaction rolls back and the retry skips the acknowledged ones.
            letters = [self._letter(rec, failure) for rec, failure in failed if _letter_id(rec) in new]
            try:
                batch = [Inbound(ev, rec.topic, rec.partition, rec.offset) for _, (rec, ev) in fresh]
                work = UnitOfWork(conn, self.topic_prefix, now)
                if tracing.enabled():
                    self._trace(fresh, work, spans)
                await self._handle(batch, work)
                for rejection in work.outbox.rejected:  # batch[i] was made from fresh[i]
                    _, (rejected, _) = fresh[rejection.index]
                    letters.append(self._letter(rejected, Failure("apply", "Rejected", rejection.reason)))
                await _acknowledged(letters)
            finally:
                if letters:  # none left in flight past this transaction (a retry would write it twice)
                    await asyncio.wait(letters)
            # Never back: records taken before a seek, delivered after it (the fetch-ahead's, from the position the
            # claim replaced), are all below the stored offset; stored as the next, nothing after them would be read
            # again to move it on (seen in CI: a member's first fetch from the log's start, after its claim's seek).
            nexts = {tp: max(tp_items[-1][0].offset + 1, owned[tp]) for tp, tp_items in items.items() if tp in owned}
            await work.outbox.flush(conn, *self.progress.storing(nexts))  # the events and the offsets, one round trip
            self.failpoints.hit("mid_transaction")
        self.dead_lettered = {k for k in self.dead_lettered if TopicPartition(k[0], k[1]) not in nexts}
        rejected = len(work.outbox.rejected)
        return nexts, len(batch) - rejected, rejected

    def _trace(self, fresh: list[Decoded], work: UnitOfWork, spans: list[Span]) -> None:
        """A span per message, child of the context its record carries; what the handler emits because of that
        message carries this span's context on (the outbox's `traced`)."""
        for _, (rec, ev) in fresh:
            attrs = {
                "messaging.destination": rec.topic,
                "ppu.event_id": str(ev.id),
                "ppu.correlation_id": ev.correlationid,
            }
            span = tracing.start(
                f"{self.progress.group_id} process", tracing.extract(rec.headers), SpanKind.CONSUMER, attrs
            )
            spans.append(span)
            work.outbox.traced[str(ev.id)] = tracing.child_headers(span)

    async def _refuse_gaps(self, items: dict[TopicPartition, list[Item]], owned: dict[TopicPartition, int]) -> None:
        """A batch that starts after the next offset we expect means the consumer's position ran ahead of what
        we stored (a position reset racing our claim): its partition is left out and read again from the stored
        offset. Unless retention removed the records in between: then there is nothing left to read."""
        expected = {tp: stored if stored != NEVER else self.starts.get(tp, 0) for tp, stored in owned.items()}
        gaps = [tp for tp in owned if items[tp][0][0].offset > expected[tp]]
        if not gaps:
            return
        log_starts = await self.log_starts(gaps)
        for tp in gaps:
            first = items[tp][0][0].offset
            if log_starts[tp] > expected[tp]:
                log.error("records removed by retention before they were applied", partition=str(tp), first=first)
            else:
                log.warning("gap before the batch; reading again", partition=str(tp), expected=expected[tp])
                del owned[tp]

    def _letter(self, rec: Record, failure: Failure) -> asyncio.Task[None]:
        return asyncio.ensure_future(self._dead_letter_once(rec, failure))

    async def _dead_letter_once(self, rec: Record, failure: Failure) -> None:
        """A retried transaction does not write the same record again."""
        if (rec.topic, rec.partition, rec.offset) not in self.dead_lettered:
            await self.dead_letter(rec, failure)
            self.dead_lettered.add((rec.topic, rec.partition, rec.offset))

    async def _handle(self, batch: list[Inbound[Any]], work: UnitOfWork) -> None:
        if batch:
            try:
                async with asyncio.timeout(self.handler_timeout_s):
                    await self.handler(batch, work)
            except TimeoutError:
                raise BatchTooSlow(f"{len(batch)} messages took over a third of the poll interval") from None


async def _acknowledged(letters: list[asyncio.Task[None]]) -> None:
    """Waits for every dead-letter write; the first that failed fails the batch."""
    for sent in await asyncio.gather(*letters, return_exceptions=True):
        if isinstance(sent, BaseException):
            raise sent


class _Gap(Exception):
    """Partitions whose batch starts after a gap (`_refuse_gaps`): the transaction is redone without them."""

    def __init__(self, partitions: set[TopicPartition]) -> None:
        super().__init__(f"gap before the batch in {sorted(map(str, partitions))}")
        self.partitions = partitions


def _marks(items: dict[TopicPartition, list[Item]], messages: bool) -> Iterator[tuple[TopicPartition, int, uuid.UUID]]:
    """Each record's inbox id: for one that failed to decode, one from its place in the log; its message's
    (`messages`)."""
    for tp, tp_items in items.items():
        for rec, ev in tp_items:
            if isinstance(ev, Failure):
                yield tp, rec.offset, _letter_id(rec)
            elif ev is not None and messages:
                yield tp, rec.offset, ev.id


def _letter_id(rec: Record) -> uuid.UUID:
    """A poison record has no message id of its own: its place in the log stands in for one."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kafka:{rec.topic}/{rec.partition}/{rec.offset}")
