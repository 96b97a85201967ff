"""`make bench`'s CPU figure comes from a step in which the broker was serving, not compiling
(bench/steps.settled_cpu), and what it set aside stays in the results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bench.latency import PACED_SETTLED_JIT_S
from bench.report import markdown
from bench.steps import CPU_TRIES, settled_cpu, until_settled


def _broker(
    compiled_per_step: list[float],
) -> tuple[Callable[[int], Awaitable[dict[str, float]]], Callable[[], float | None]]:
    """A step measuring `100 + try` µs per attempt, and a JIT clock that advances by each step's compile seconds."""
    clock = {"t": 0.0}

    async def measure(i: int) -> dict[str, float]:
        clock["t"] += compiled_per_step[i]
        return {"kafka": 100.0 + i, "lookup worker": 50.0}

    return measure, lambda: clock["t"]


async def test_a_step_while_the_broker_compiles_is_set_aside_and_kept() -> None:
    measure, jit = _broker([0.79, 0.01, 0.0])
    r = await settled_cpu(measure, jit, 20_000)  # settled: under 0.3 s per 10,000 attempts
    assert r["cpu_us_per_attempt"] == 151.0 and r["kafka_jit_s_during_cpu_step"] == pytest.approx(0.01)
    assert r["cpu_steps_set_aside_while_compiling"] == [
        {"cpu_us_per_attempt_by_part": {"kafka": 100.0, "lookup worker": 50.0}, "kafka_jit_s": 0.79}
    ]
    assert "Measured after 1 CPU step(s) set aside, the broker compiling 0.79 s." in markdown(r)


async def test_a_settled_first_step_is_taken_and_the_last_is_taken_whatever_it_compiled() -> None:
    measure, jit = _broker([0.5, 9.0, 9.0])  # 0.5 s over 20,000 attempts is settled
    r = await settled_cpu(measure, jit, 20_000)
    assert r["cpu_us_per_attempt"] == 150.0 and r["cpu_steps_set_aside_while_compiling"] == []
    measure, jit = _broker([2.0] * CPU_TRIES)
    r = await settled_cpu(measure, jit, 20_000)
    assert r["cpu_us_per_attempt"] == 150.0 + CPU_TRIES - 1
    assert len(r["cpu_steps_set_aside_while_compiling"]) == CPU_TRIES - 1


async def test_without_a_readable_broker_the_first_step_is_taken() -> None:
    measure, _ = _broker([5.0, 0.0, 0.0])
    r = await settled_cpu(measure, lambda: None, 20_000)
    assert r["cpu_us_per_attempt"] == 150.0 and r["kafka_jit_s_during_cpu_step"] is None


async def test_the_paced_warm_up_settles_on_its_own_tighter_bar() -> None:
    # 0.2 s per 10,000 attempts passes the backlog warm-up's bar (0.3) but not the paced warm-up's (0.1).
    measure, jit = _broker([0.2, 0.2, 0.05, 0.0])
    assert len(await until_settled(measure, jit, 10_000, 4)) == 1
    measure, jit = _broker([0.2, 0.2, 0.05, 0.0])
    steps = await until_settled(measure, jit, 10_000, 4, PACED_SETTLED_JIT_S)
    assert [j for _, j in steps] == pytest.approx([0.2, 0.2, 0.05])
