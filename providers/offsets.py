"""Which offsets the HTTP bridge may commit while lookups finish out of order.

A lookup being retried must not hold back those behind it, so records are handled concurrently and finish in
any order; a partition's committed offset only moves to just below its oldest unfinished record. A crash then
re-sends at most the unfinished lookups (and those finished after them), which the provider's DUPLICATE_RECORD
and our response consumer's staleness rules make harmless.
"""

from __future__ import annotations

from aiokafka import TopicPartition


class OffsetTracker:
    def __init__(self) -> None:
        self.pending: dict[TopicPartition, set[int]] = {}
        self.highest: dict[TopicPartition, int] = {}  # highest offset taken per partition
        self.committed: dict[TopicPartition, int] = {}

    def __len__(self) -> int:
        return sum(len(p) for p in self.pending.values())

    def started(self, tp: TopicPartition, offset: int) -> None:
        self.pending.setdefault(tp, set()).add(offset)
        self.highest[tp] = max(offset, self.highest.get(tp, -1))

    def finished(self, tp: TopicPartition, offset: int) -> None:
        if tp in self.pending:  # gone if the partition was revoked meanwhile
            self.pending[tp].discard(offset)

    def forget(self, partitions: list[TopicPartition]) -> None:
        """A revoked partition: its new owner starts from the last commit."""
        for tp in partitions:
            self.pending.pop(tp, None)
            self.highest.pop(tp, None)
            self.committed.pop(tp, None)

    def to_commit(self) -> dict[TopicPartition, int]:
        """The next offset to read, per partition whose committable position moved since the last call."""
        out = {}
        for tp, top in self.highest.items():
            pending = self.pending.get(tp)
            position = min(pending) if pending else top + 1
            if position != self.committed.get(tp):
                out[tp] = position
        return out

    def committed_at(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)
