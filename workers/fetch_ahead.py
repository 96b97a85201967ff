"""Records taken from the consumer while a batch is applied, so that the next batch is whatever came meanwhile.

aiokafka asks a broker for more only once everything it holds from that broker has been taken (`getmany`), and a
fetch answers as soon as one record is there. Taken only between batches, a record that reached the broker during
a batch waited for that batch, the fetch of the one record before it, and then the batch after (bench: the paced
latency). Taking continuously in the background keeps a fetch outstanding all the time; the batch loop then takes
everything gathered at once, up to a batch's worth (no more is taken until it has). Each record is decoded as it is
taken, so the next batch's decoding runs while this one waits on the database, not after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from messaging.fetch_pace import FetchPace

T = TypeVar("T")
Record: TypeAlias = ConsumerRecord[bytes, bytes]
Gathered: TypeAlias = dict[TopicPartition, list[tuple[Record, T]]]


class FetchAhead(Generic[T]):
    """Gathers (record, decoded) per partition, in order."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        max_records: int,
        decode: Callable[[Record], T],
        pace: FetchPace | None = None,
        idle_after_ms: int = 1000,
    ) -> None:
        self.consumer, self.max_records, self.decode = consumer, max_records, decode
        self.pace, self.idle_after_ms = pace, idle_after_ms  # nothing for `idle_after_ms`: the pace is told
        self.gathered: Gathered[T] = {}
        self.count = 0
        self.arrived = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    async def run(self) -> None:
        """Until cancelled; a consumer error ends it (and `take` raises it)."""
        while True:
            await self.room.wait()
            records = await self.consumer.getmany(
                timeout_ms=self.idle_after_ms, max_records=self.max_records - self.count
            )
            if self.pace is not None:
                self.pace.traffic(sum(map(len, records.values())))
            decode = self.decode
            for tp, recs in records.items():
                self.gathered.setdefault(tp, []).extend([(r, decode(r)) for r in recs])
                self.count += len(recs)
            if self.count:
                self.arrived.set()
            if self.count >= self.max_records:
                self.room.clear()

    async def take(
        self, running: asyncio.Future[None], timeout_s: float
    ) -> dict[TopicPartition, list[tuple[Record, T]]]:
        """Everything gathered (waiting up to `timeout_s` for something to arrive)."""
        if not self.count:
            arrived = asyncio.ensure_future(self.arrived.wait())
            either: list[asyncio.Future[Any]] = [arrived, running]
            try:
                await asyncio.wait(either, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                arrived.cancel()
        if running.done():
            running.result()  # the consumer failed: so does the batch loop
        records, self.gathered, self.count = self.gathered, {}, 0
        self.arrived.clear()
        self.room.set()
        return records

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions sought elsewhere (a claim, a re-read from the stored offset) or revoked: what was gathered of
        them is not what comes next."""
        for tp in partitions:
            self.count -= len(self.gathered.pop(tp, []))
        if not self.count:
            self.arrived.clear()
        if self.count < self.max_records:
            self.room.set()
