"""Kafka's committed offsets, sent off the critical path. They are only a hint (the database holds the real offsets,
workers/group_progress.py): a batch never waits for one. One commit is in flight at a time, at most one per
interval; offsets stored meanwhile go with the next."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = structlog.get_logger()


class CommitHints:
    def __init__(self, worker: str, every_s: float = 0.0) -> None:
        self.worker, self.every_s = worker, every_s
        self._draining = asyncio.Event()  # the last hint goes without waiting out the interval
        self._offsets: dict[TopicPartition, int] = {}
        self._sending: asyncio.Future[None] | None = None

    def hint(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        self._offsets.update(offsets)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.ensure_future(self._send(consumer))

    async def _send(self, consumer: AIOKafkaConsumer) -> None:
        while self._offsets:
            if self.every_s:  # what is stored meanwhile goes with this one (a drain ends the wait at once)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._draining.wait(), self.every_s)
            offsets, self._offsets = self._offsets, {}
            try:
                await consumer.commit(offsets)
            except KafkaError as e:  # a partition that moved on, a coordinator away: the next hint covers it
                log.info("kafka commit hint failed", worker=self.worker, error=str(e))

    async def drain(self, within: float) -> None:
        """The last hint goes out (bounded) before the consumer leaves its group."""
        self._draining.set()
        if self._sending is not None:
            with contextlib.suppress(TimeoutError, KafkaError):
                await asyncio.wait_for(self._sending, within)
