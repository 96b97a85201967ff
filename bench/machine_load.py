"""How busy the machine was, every 100 ms, while a paced flow ran: the share of its CPU time left idle and the CPU
pressure (Linux PSI, `some`: the ms of each 100 in which a runnable task waited for a CPU). At stop 50 the paced
latency's slow windows were the moments the two cores saturated: 0.08-0.14 idle and 57-82 ms of pressure around
them, against 0.26-0.33 and 33-41 around the others (bench/results/20261208-paced-stalls.md). The idle share comes
from psutil; the pressure is read from /proc/pressure/cpu, which psutil does not read (None where the kernel has
none)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PRESSURE = Path("/proc/pressure/cpu")
EVERY_S = 0.1


@dataclass(frozen=True)
class Sample:
    at: float  # the end of the 100 ms it covers (epoch seconds)
    idle: float  # share of every CPU's time idle (iowait included) over it
    pressure_ms: float | None  # ms of it in which some runnable task waited for a CPU


def pressure_some_us(text: str) -> int | None:
    """The `some` line's `total` (µs) of a /proc/pressure file's text."""
    for line in text.splitlines():
        kind, *fields = line.split()
        if kind == "some":
            return next((int(f[6:]) for f in fields if f.startswith("total=")), None)
    return None


def _pressure() -> int | None:
    with contextlib.suppress(OSError):
        return pressure_some_us(PRESSURE.read_text())
    return None


def _idle_and_total() -> tuple[float, float]:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    # Linux counts a guest's time in `user` and `nice` too: summed once.
    return idle, sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


@dataclass
class MachineLoad:
    """Samples while `run` runs (as a task, cancelled when the flow ends)."""

    samples: list[Sample] = field(default_factory=list)

    async def run(self) -> None:
        idle, total = _idle_and_total()
        pressure = _pressure()
        while True:
            await asyncio.sleep(EVERY_S)
            now_idle, now_total = _idle_and_total()
            now_pressure = _pressure()
            spent = now_total - total
            self.samples.append(
                Sample(
                    at=time.time(),
                    idle=min(max((now_idle - idle) / spent, 0.0), 1.0) if spent > 0 else 1.0,  # counters in 1/100 s
                    pressure_ms=(now_pressure - pressure) / 1000
                    if now_pressure is not None and pressure is not None
                    else None,
                )
            )
            idle, total, pressure = now_idle, now_total, now_pressure


def around(samples: list[Sample], start: float, span_s: float = 0.3) -> dict[str, float | None]:
    """The machine from `start` for `span_s` (a window's attempts finish up to a few hundred ms after it begins): the
    lowest idle share and the highest pressure of the samples covering it; None for what no sample covers."""
    seen = [s for s in samples if start < s.at <= start + span_s + EVERY_S]
    pressures = [s.pressure_ms for s in seen if s.pressure_ms is not None]
    return {
        "idle": round(min(s.idle for s in seen), 2) if seen else None,
        "cpu_pressure_ms": round(max(pressures), 1) if pressures else None,
    }
