"""The bench cleans up after earlier runs, and only after them."""

from __future__ import annotations

import pytest

from bench.env import RUN_TOPICS
from kernel.topics import topic

# As bench/run.py, bench/steps.py and bench/only.py name them: a run's tag, a step's letter, a round's number.
RUNS = ["b1795943591f.", "b1795943591.", "k1795942919.", "fd3e1c0a9.", "bpeer."]
STEPS = ["b1795943591w0.", "b1795943591w5.", "b1795943591c2.", "b1795943591o0.", "b1795943591t1.", "b1795943591e.t0x."]


@pytest.mark.parametrize("prefix", RUNS + STEPS)
def test_a_runs_topics_are_dropped(prefix: str) -> None:
    assert RUN_TOPICS.match(topic("purchase_attempts").name(prefix))


@pytest.mark.parametrize("prefix", ["", "prod.", "bank.", "k8s.", "fault.", "b."])
def test_a_deployments_topics_are_kept(prefix: str) -> None:
    assert not RUN_TOPICS.match(topic("purchase_attempts").name(prefix))
    assert not RUN_TOPICS.match("__consumer_offsets")
