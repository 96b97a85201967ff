"""The paced latency's machine sampler: the idle share and CPU pressure around each slow window."""

from __future__ import annotations

import asyncio

from bench.latency import slow_windows
from bench.machine_load import PRESSURE, MachineLoad, Sample, around, pressure_some_us

PSI = "some avg10=4.18 avg60=19.85 avg300=24.29 total=10999951715\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def test_the_pressure_read_is_the_some_lines_total() -> None:
    assert pressure_some_us(PSI) == 10_999_951_715
    assert pressure_some_us("full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n") is None


def test_around_a_window_the_lowest_idle_and_the_highest_pressure_of_the_samples_covering_it() -> None:
    points = [(0.5, 10.0), (0.1, 90.0), (0.3, 40.0), (0.0, 99.0)]
    samples = [Sample(10.0 + i / 10, idle, p) for i, (idle, p) in enumerate(points)]  # each ends at its `at`
    # From 9.95, a span of s: the samples ending after 9.95 and up to s + 100 ms later.
    assert around(samples, 9.95) == {"idle": 0.0, "cpu_pressure_ms": 99.0}  # 10.0 to 10.3
    assert around(samples, 9.95, span_s=0.2) == {"idle": 0.1, "cpu_pressure_ms": 90.0}  # 10.0 to 10.2
    assert around(samples, 9.95, span_s=0.0) == {"idle": 0.5, "cpu_pressure_ms": 10.0}  # 10.0 alone
    assert around(samples, 20.0) == {"idle": None, "cpu_pressure_ms": None}
    assert around([Sample(10.0, 0.4, None)], 9.95) == {"idle": 0.4, "cpu_pressure_ms": None}


def test_a_slow_window_carries_how_busy_the_machine_was() -> None:
    start = 1_796_700_000.0
    sent = {f"a{i}": start + i * 0.01 for i in range(1000)}
    worker = {c: 0.15 if 6.3 <= t - start < 6.4 else 0.005 for c, t in sent.items()}
    stamped = {c: (t + worker[c], t + worker[c] + 0.003) for c, t in sent.items()}
    received = {c: made + 0.002 for c, (_, made) in stamped.items()}
    load = [Sample(start + i / 10, 0.05 if 63 <= i <= 66 else 0.3, 95.0 if 63 <= i <= 66 else 35.0) for i in range(101)]
    stall = max(slow_windows(sent, stamped, received, count=3, load=load), key=lambda w: w["ms"])
    assert stall["at"].startswith("2026-12-08T03:20:06.3")
    assert stall["idle"] == 0.05 and stall["cpu_pressure_ms"] == 95.0
    assert "idle" not in slow_windows(sent, stamped, received, count=1)[0]


async def test_the_sampler_reads_this_machine_every_100_ms() -> None:
    machine = MachineLoad()
    task = asyncio.create_task(machine.run())
    await asyncio.sleep(0.45)
    task.cancel()
    assert 2 <= len(machine.samples) <= 5  # 4 on time; a busy machine may delay one
    assert all(0.0 <= s.idle <= 1.0 for s in machine.samples)
    assert [s.at for s in machine.samples] == sorted(s.at for s in machine.samples)
    if PRESSURE.exists():  # Linux with PSI, as here: the pressure is read, in ms of each 100
        assert all(s.pressure_ms is not None and 0.0 <= s.pressure_ms <= 250.0 for s in machine.samples)
