"""CPU attribution summed over processes: never negative when a process ends or starts between snapshots; the
broker's JIT compile time, read from outside."""

from __future__ import annotations

import os

import psutil
import pytest

from bench.process_usage import RssSampler, broker_jit_seconds, cpu_seconds, cpu_used
from kernel.connections import Endpoints


def test_cpu_used_counts_new_processes_from_zero_and_ignores_ended_ones() -> None:
    before = {("postgresql", 1): 5.0, ("postgresql", 2): 9.0, ("lookup", 10): 1.0}
    after = {("postgresql", 1): 5.5, ("postgresql", 3): 0.25, ("lookup", 10): 3.0}  # pid 2 ended, pid 3 started
    used = cpu_used(before, after)
    assert used == {"postgresql": 0.75, "lookup": 2.0}


def test_cpu_seconds_reads_this_process_under_its_label() -> None:
    snapshot = cpu_seconds({"me": os.getpid()})
    assert snapshot[("me", os.getpid())] > 0


def test_rss_growth_compares_first_and_last_quarter_medians() -> None:
    sampler = RssSampler([1])
    sampler.samples[1] = [(float(t), 100.0 + (10.0 if t >= 6 else 0.0)) for t in range(8)]
    assert sampler.peak() == 110.0
    assert sampler.growth() == 10.0


def test_the_brokers_compile_time_is_read_when_a_local_jvm_runs(endpoints: Endpoints) -> None:
    local_jvm = any(p.info["name"] == "java" for p in psutil.process_iter(["name"]))
    spent = broker_jit_seconds()
    if local_jvm:  # the test stack's own broker: a JVM that has compiled something by now
        assert spent is not None and spent > 0
    else:  # a cluster of the user's elsewhere: nothing to read here
        assert spent is None


def test_without_jstat_the_compile_time_is_unknown_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert broker_jit_seconds() is None


def test_paced_cpu_figures_sum_the_parts_under_the_rate_and_show_in_the_report() -> None:
    from bench.report import markdown
    from bench.steps import paced_cpu_figures

    figures = paced_cpu_figures({"lookup worker": 400.0, "kafka": 380.0, "postgresql": 420.0}, 1000.0)
    assert figures["cpu_us_per_attempt_at_1000"] == 1200.0
    assert figures["cpu_us_per_attempt_at_1000_by_part"]["kafka"] == 380.0
    assert paced_cpu_figures({}, 1000.0) == {}  # nothing measured: no figure, rather than a zero
    text = markdown(figures)
    assert "| `cpu_us_per_attempt_at_1000` | 1200.000 | reported |" in text
    assert "| postgresql | 420 |" in text
