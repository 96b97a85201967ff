"""Partitions set aside: a record that can be neither applied nor dead-lettered (the dead-letter topic refuses it,
or is away) pauses its own partition only, which is tried again later; the others flow on, and /healthz reports
the stopped partition meanwhile."""

from __future__ import annotations

import time

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from messaging import metrics

log = structlog.get_logger()
SET_ASIDE_SECONDS = 5.0  # how long a partition that cannot dead-letter waits before it is tried again


class PartitionStuck(Exception):
    """A record of this partition can be neither applied nor dead-lettered: the partition is set aside."""

    def __init__(self, tp: TopicPartition, reason: str) -> None:
        super().__init__(reason)
        self.tp, self.reason = tp, reason


class SetAside:
    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.until: dict[TopicPartition, float] = {}  # paused partitions → when to try them again

    def pause(self, consumer: AIOKafkaConsumer, tp: TopicPartition, reason: str) -> None:
        if tp in consumer.assignment():
            consumer.pause(tp)
        self.until[tp] = time.monotonic() + SET_ASIDE_SECONDS
        metrics.partition_stopped(self.worker, tp, reason)
        log.error(
            "partition stopped: a record can be neither applied nor dead-lettered; the others flow on",
            worker=self.worker,
            partition=str(tp),
            reason=reason[:300],
            retry_in_s=SET_ASIDE_SECONDS,
        )

    def resume_due(self, consumer: AIOKafkaConsumer) -> None:
        """Resumes set-aside partitions whose time has come (they were sought back to their stored offset)."""
        for tp in [tp for tp, at in self.until.items() if at <= time.monotonic()]:
            del self.until[tp]
            if tp in consumer.assignment():
                consumer.resume(tp)

    def forget(self, tp: TopicPartition) -> None:
        """A revoked partition: its new owner tries it again; this member reports it no longer."""
        self.until.pop(tp, None)
