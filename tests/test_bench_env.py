"""The bench cleans up after earlier runs, and only after them."""

from __future__ import annotations

import pytest

from bench.env import RUN_TOPICS
from kernel.topics import topic


@pytest.mark.parametrize("prefix", ["b1795943591f.", "b1795943591.", "k1795942919.", "fd3e1c0a9.", "bpeer."])
def test_a_runs_topics_are_dropped(prefix: str) -> None:
    assert RUN_TOPICS.match(topic("purchase_attempts").name(prefix))


@pytest.mark.parametrize("prefix", ["", "prod.", "bank.", "k8s.", "fault.", "b."])
def test_a_deployments_topics_are_kept(prefix: str) -> None:
    assert not RUN_TOPICS.match(topic("purchase_attempts").name(prefix))
    assert not RUN_TOPICS.match("__consumer_offsets")
