"""Ratios measured in turn (bench/in_turn.py): each turn's variant against that turn's own 10k flow, the order
rotated, the median of the turns' ratios. The flows themselves are stood in for: this checks the bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest

from bench import flows
from bench import in_turn as module
from bench.env import BenchEnv
from bench.in_turn import Variant, in_turn
from bench.steps import turn_figures
from kernel.settings import Settings


async def test_each_ratio_is_the_median_of_the_turns_own(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    poisoned: dict[str, int] = {}  # the poison_every each variant's flow ran with
    # The machine drifts: every flow of turn 2 runs at half speed, turn 3's at double. Only a ratio within a turn
    # stays what the variant is (history 0.9 of the 10k flow, 1M meters 0.8).
    speed = {"10k": 1000.0, "10m_history": 900.0, "1m": 800.0, "1pct_poison": 950.0}
    drift = {"t1": 1.0, "t2": 0.5, "t3": 2.0}

    async def prepare_topics(env: BenchEnv, suffix: str) -> BenchEnv:
        return BenchEnv(env.settings.model_copy(update={"topic_prefix": suffix}), env.database_url)

    async def lookup_flow(env: BenchEnv, n: int, meters: int, **kw: Any) -> tuple[float, None]:
        suffix = env.settings.topic_prefix
        name = {"10k": "10k", "10mhistory": "10m_history", "1m": "1m", "1pctpoison": "1pct_poison"}[suffix[2:]]
        order.append(f"{suffix[:2]}:{name}")
        poisoned[name] = kw["poison_every"]
        return speed[name] * drift[suffix[:2]], None

    monkeypatch.setattr(module, "prepare_topics", prepare_topics)
    monkeypatch.setattr(flows, "lookup_flow", lookup_flow)
    env = BenchEnv(Settings(), "postgresql://unused")
    history, big, poison = Variant(env, 10_000), Variant(env, 1_000_000), Variant(env, 10_000, poison_every=100)
    variants = {"10m_history": history, "1m": big, "1pct_poison": poison}
    turns, _ = await in_turn(Variant(env, 10_000), variants, 20_000)
    assert turns["10m_history_vs_10k"] == pytest.approx(0.9)
    assert turns["1m_vs_10k"] == pytest.approx(0.8)
    assert [o.split(":")[1] for o in order[:4]] == ["10k", "10m_history", "1m", "1pct_poison"]
    assert [o.split(":")[1] for o in order[4:8]] == ["10m_history", "1m", "1pct_poison", "10k"]  # none always first
    assert poisoned == {"10k": 0, "10m_history": 0, "1m": 0, "1pct_poison": 100}
    figures = turn_figures(turns)
    assert figures["lookup_10m_history_vs_empty_ratio"] == pytest.approx(0.9)
    assert figures["lookup_1m_vs_10k_ratio"] == pytest.approx(0.8)
    assert figures["poison_1pct_vs_clean_ratio"] == pytest.approx(0.95)
    assert figures["lookup_flow_1m_per_s"] == pytest.approx(800.0)  # the median turn's rate
    assert "lookup_flow_10k_per_s" not in figures  # the run's own 10k flow keeps that name
