"""The consume loop every consumer flow uses, and its rebalance logic.

Per batch (one `getmany`): decode and validate each record, then apply the batch as one unit of work
(workers/unit_of_work.py). Kafka's own commit follows, as a hint sent in the background (workers/commit_hints.py).
A batch that fails is retried message by message, so one poison message cannot stall its partition; a partition
whose record can be neither applied nor dead-lettered is set aside and the others flow on. Partitions are claimed
in the database on assignment.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from kernel.settings import Settings
from kernel.topics import topic
from messaging import metrics
from messaging.dead_letters import DeadLetterer, DeadLetterFailed, Failure
from messaging.fetch_pace import FetchPace
from messaging.inbound import Item, decode
from messaging.retrying import MESSAGE_FAULTS, BatchTooSlow, patiently, pause, retry_until_stopped
from schemas.envelope import Envelope
from workers.batch_transactions import BatchTransactions
from workers.commit_hints import CommitHints
from workers.failpoints import Failpoints
from workers.fetch_ahead import FetchAhead
from workers.group_progress import NEVER, GroupProgress
from workers.registry import ConsumerFlow
from workers.set_aside import PartitionStuck, SetAside

log = structlog.get_logger()


class _Fence(ConsumerRebalanceListener):  # type: ignore[misc]
    """Claims each assigned partition in the database (epoch + 1) and seeks to the stored offset."""

    def __init__(self, runtime: ConsumerRuntime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.runtime.progress.release(list(revoked))
        if self.runtime.ahead is not None:
            self.runtime.ahead.forget(revoked)
        for tp in revoked:
            self.runtime.set_aside.forget(tp)
            metrics.partition_moving(self.runtime.flow.worker, tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if assigned:
            await self.runtime.claim(list(assigned))


class ConsumerRuntime:
    def __init__(self, flow: ConsumerFlow, settings: Settings, pool: asyncpg.Pool, bootstrap: str) -> None:
        self.flow, self.settings, self.pool, self.bootstrap = flow, settings, pool, bootstrap
        spec = topic(flow.topic_key)
        self.topic_name = spec.name(settings.topic_prefix)
        assert spec.dead_letter is not None, f"{flow.topic_key} has no dead-letter topic in topics.yaml"
        self.dlq_name = topic(spec.dead_letter).name(settings.topic_prefix)
        self.member = f"{flow.worker}-{uuid.uuid4().hex[:8]}"
        self.progress = GroupProgress(flow.group_id, self.member)
        self.consumer: AIOKafkaConsumer | None = None
        # Records taken, and decoded, while a batch is applied (workers/fetch_ahead.py).
        self.ahead: FetchAhead[Envelope[Any] | Failure | None] | None = None
        self.dead_letters = DeadLetterer(bootstrap, flow.group_id)
        self.failpoints = Failpoints(settings.failpoints)
        self.applied = 0  # messages handed to the handler and committed (for tests and metrics)
        self.transactions = BatchTransactions(
            pool,
            self.progress,
            flow.handler,
            settings.topic_prefix,
            self._dead_letter,
            self._log_starts,
            settings.max_poll_interval_ms / 3000,
            self.failpoints,
            flow.inbox,
        )
        self.set_aside = SetAside(flow.worker)
        self.hints = CommitHints(flow.worker, settings.commit_hint_every_ms / 1000)

    async def claim(self, partitions: list[TopicPartition]) -> None:
        # A claim whose connection is cut is tried again: a partition assigned but never claimed would drop
        # its records forever (aiokafka only logs a listener's failure).
        stored = await patiently(lambda: self.progress.claim(self.pool, partitions), within=30.0)
        await self._seek_to_stored(stored)
        log.info("partitions claimed", worker=self.flow.worker, partitions=[str(tp) for tp in partitions])

    async def _start_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.flow.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            fetch_min_bytes=s.fetch_min_bytes,
            max_poll_interval_ms=s.max_poll_interval_ms,
            session_timeout_ms=10000,
            heartbeat_interval_ms=3000,
            client_id=self.member,
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        await patiently(self.dead_letters.start)  # a broker restarting as we start is waited for
        try:
            self.consumer = consumer = await patiently(self._start_consumer)
            await self._topic_known(consumer, stop)
            consumer.subscribe([self.topic_name], listener=_Fence(self))
            model, most = self.flow.model, s.max_message_bytes
            self.ahead = ahead = FetchAhead[Envelope[Any] | Failure | None](
                consumer,
                s.batch_max_records,
                lambda rec: decode(rec, model, most),
                FetchPace(consumer),
                s.fetch_idle_after_ms,
            )
            fetching = asyncio.ensure_future(ahead.run())
            try:
                while not stop.is_set():
                    self.set_aside.resume_due(consumer)
                    records = await ahead.take(fetching, s.batch_timeout_ms / 1000)
                    if records:
                        work = asyncio.ensure_future(self._process(records, stop))
                        await asyncio.wait([work])  # shielded from our own cancellation: a batch finishes or fails
                        work.result()
                    self._report_progress(records)
            finally:
                fetching.cancel()
        finally:
            await self._stop()

    async def _topic_known(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Waits until the broker's metadata lists the topic. A member that joins its group before then is assigned
        nothing and, until its metadata next expires (5 min), consumes nothing (a fault run's first scenario,
        started right after its topics were created, stalled so)."""
        while not stop.is_set() and self.topic_name not in await consumer.topics():
            log.warning("topic not in the cluster's metadata yet; waiting", topic=self.topic_name)
            await pause(stop, 0.5)

    async def _stop(self) -> None:
        await self.hints.drain(self.settings.shutdown_timeout_seconds)
        # aiokafka's stop() can hang when the brokers are gone: bound it.
        for part in (self.consumer, self.dead_letters):
            if part is not None:
                try:
                    await asyncio.wait_for(part.stop(), self.settings.shutdown_timeout_seconds)
                except (TimeoutError, KafkaError) as e:
                    log.warning("stop timed out", worker=self.flow.worker, part=type(part).__name__, error=str(e))

    def _report_progress(self, records: dict[TopicPartition, list[Item]]) -> None:
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            last = records[tp][-1][0].offset + 1 if tp in records else None
            if high is not None and last is not None:
                metrics.LAG.labels(self.flow.worker, tp.topic, tp.partition).set(max(high - last, 0))
        metrics.LAST_PROGRESS.labels(self.flow.worker).set(time.time())

    async def _process(self, records: dict[TopicPartition, list[Item]], stop: asyncio.Event) -> None:
        # Records fetched before our claim of their partition finished (it waits for the previous holder's
        # transaction) are not ours to apply yet; the claim seeks back to the stored offset, so none is skipped.
        items = {tp: recs for tp, recs in records.items() if tp in self.progress.epochs}
        unclaimed = {str(tp): (rs[0][0].offset, rs[-1][0].offset) for tp, rs in records.items() if tp not in items}
        if unclaimed:
            log.debug("records of partitions not claimed yet dropped", worker=self.flow.worker, records=unclaimed)
        if not items:
            return
        started = time.monotonic()
        stored = await self._apply_flowing(items, stop)
        for tp in stored:
            metrics.partition_moving(self.flow.worker, tp)
        metrics.BATCHES.labels(self.flow.worker).inc()
        metrics.BATCH_SECONDS.labels(self.flow.worker).observe(time.monotonic() - started)
        await self._reseek([tp for tp in items if tp not in stored])
        # Only what the database stored.
        hint = {tp: offset for tp, offset in stored.items() if tp in self.progress.epochs}
        self.failpoints.hit("after_db_commit")
        if hint:
            assert self.consumer is not None
            self.hints.hint(self.consumer, hint)

    async def _apply_flowing(
        self, items: dict[TopicPartition, list[Item]], stop: asyncio.Event
    ) -> dict[TopicPartition, int]:
        """Applies the batch. A partition whose record can be neither applied nor dead-lettered is set aside
        (paused, tried again later, reported) and the others are applied without it: one record never stops
        the partitions it does not belong to."""
        stored: dict[TopicPartition, int] = {}
        while items:
            try:
                return await retry_until_stopped(stop, functools.partial(self._apply, items))
            except PartitionStuck as e:
                self._set_aside(e)
                items = {tp: tp_items for tp, tp_items in items.items() if tp != e.tp}
            except MESSAGE_FAULTS as e:  # find the message(s) at fault, one at a time
                log.warning("batch failed, applying one by one", worker=self.flow.worker, error=repr(e))
                for tp, tp_items in items.items():
                    for item in tp_items:
                        try:
                            applied = await self._apply_one(tp, item, stop)
                        except PartitionStuck as stuck:
                            self._set_aside(stuck)
                            applied = {}
                        if tp not in applied:
                            stored.pop(tp, None)
                            break  # fenced or set aside: the partition is read again from the stored offset
                        stored.update(applied)
                return stored
        return stored

    def _set_aside(self, stuck: PartitionStuck) -> None:
        assert self.consumer is not None
        self.set_aside.pause(self.consumer, stuck.tp, stuck.reason)

    async def _reseek(self, fenced: list[TopicPartition]) -> None:
        """Records of a fenced partition were dropped unapplied. If the partition is (again) ours, go back to
        the stored offset, or the consumer's position would skip them; if not, its new owner reads them."""
        mine = [tp for tp in fenced if tp in self.progress.epochs]
        if mine:
            await self._seek_to_stored(await self.progress.stored(self.pool, mine))

    async def _seek_to_stored(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        # The database is the truth: Kafka's committed offset (a hint) may be ahead of it. A partition never stored
        # starts at the log's start, as a concrete offset (`_apply` checks the first record against it).
        never_stored = [tp for tp, offset in offsets.items() if offset == NEVER]
        starts = await self.consumer.beginning_offsets(never_stored) if never_stored else {}
        # Every seek, then what was gathered forgotten, with no wait in between: records the fetch-ahead took from the
        # position before a seek are not what comes next. (Forgotten before the wait for the log's start, those taken
        # during it made the next batch start past that start, which reads as a gap, so the partition was sought
        # again, and again: seen with four lookup workers joining at once.)
        for tp, offset in offsets.items():
            if offset == NEVER:
                offset = self.transactions.starts[tp] = starts[tp]
            self.consumer.seek(tp, offset)
        if self.ahead is not None:
            self.ahead.forget(offsets)

    async def _log_starts(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self.consumer is not None
        starts: dict[TopicPartition, int] = await self.consumer.beginning_offsets(partitions)
        return starts

    async def _apply(self, items: dict[TopicPartition, list[Item]]) -> dict[TopicPartition, int]:
        nexts, applied, rejected = await self.transactions.apply(items)
        self.applied += applied + rejected
        for outcome, n in (("applied", applied), ("rejected", rejected)):
            metrics.MESSAGES.labels(self.flow.worker, self.topic_name, outcome).inc(n)
        return nexts

    async def _dead_letter(self, rec: ConsumerRecord[bytes, bytes], failure: Failure) -> None:
        """The one place a dead-letter write is made; a write that fails sets the record's partition aside."""
        try:
            await self.dead_letters.send(self.dlq_name, rec, failure)
        except DeadLetterFailed as e:
            raise PartitionStuck(TopicPartition(rec.topic, rec.partition), str(e)) from e

    async def _apply_one(self, tp: TopicPartition, item: Item, stop: asyncio.Event) -> dict[TopicPartition, int]:
        try:
            # One message still too slow is waiting on the database (a lock, a stall), not broken: wait it out.
            return await retry_until_stopped(stop, lambda: self._apply({tp: [item]}), also=(BatchTooSlow,))
        except MESSAGE_FAULTS as e:
            rec = item[0]
            await self._dead_letter(rec, Failure("apply", type(e).__name__, str(e) or repr(e)))
            return await retry_until_stopped(stop, lambda: self._apply({tp: [(rec, None)]}))
