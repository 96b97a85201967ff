"""Kafka's committed offsets are a hint sent at most once per interval: offsets stored meanwhile go together."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from workers.commit_hints import CommitHints

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


class _Consumer:
    """Only what CommitHints calls: commit(offsets), recorded."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


async def test_hints_within_an_interval_are_one_commit_of_the_latest_offsets() -> None:
    consumer, hints = _Consumer(), CommitHints("lookup", every_s=0.2)
    c: Any = consumer
    for offset in (10, 11, 12):
        hints.hint(c, {A: offset})
        await asyncio.sleep(0.01)
    hints.hint(c, {B: 5})
    assert consumer.commits == []  # nothing before the interval has passed
    await asyncio.sleep(0.3)
    assert consumer.commits == [{A: 12, B: 5}]
    hints.hint(c, {A: 13})
    await asyncio.wait_for(hints.drain(5.0), 0.1)  # leaving: sent at once, not after the interval
    assert consumer.commits == [{A: 12, B: 5}, {A: 13}]


async def test_without_an_interval_each_hint_is_sent_at_once() -> None:
    consumer, hints = _Consumer(), CommitHints("lookup")
    c: Any = consumer
    hints.hint(c, {A: 1})
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert consumer.commits == [{A: 1}]
