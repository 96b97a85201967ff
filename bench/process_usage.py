"""CPU time and resident memory of the processes a benchmark measures: workers, PostgreSQL backends, the broker."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass, field

import psutil

CpuSnapshot = dict[tuple[str, int], float]  # (label, pid) → CPU seconds so far


def cpu_seconds(pids: dict[str, int], groups: dict[str, list[int]] | None = None) -> CpuSnapshot:
    """CPU seconds so far of the named processes, of each group's processes (under the group's name), and of every
    PostgreSQL and Kafka (java) process, per process."""
    out: CpuSnapshot = {}
    named = list(pids.items())
    named += [(name, pid) for name, members in (groups or {}).items() for pid in members]
    for name, pid in named:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            out[(name, pid)] = t.user + t.system
    for p in psutil.process_iter(["name", "cpu_times"]):
        label = {"postgres": "postgresql", "java": "kafka"}.get(p.info["name"] or "")
        if label and p.info["cpu_times"] is not None:
            out[(label, p.pid)] = p.info["cpu_times"].user + p.info["cpu_times"].system
    return out


def broker_jit_seconds() -> float | None:
    """Seconds the local Kafka broker has spent compiling (its JVM's JIT) so far, summed over the local Java
    processes; None when none can be read (no local broker, or no `jstat`). Read with jstat, the JDK's own reader of
    the JVM's performance counters: no agent attached to the broker, nothing to install beside the JDK."""
    total, seen = 0.0, False
    for p in psutil.process_iter(["name"]):
        if p.info["name"] != "java":
            continue
        try:
            done = subprocess.run(
                ["jstat", "-compiler", str(p.pid)], capture_output=True, text=True, timeout=10, check=True
            )
            total += float(done.stdout.splitlines()[1].split()[3])  # Compiled Failed Invalid Time …
            seen = True
        except (OSError, subprocess.SubprocessError, IndexError, ValueError):
            continue
    return total if seen else None


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds each label used between two snapshots, summed over its processes. A process that started in
    between counts from zero; one that ended in between is not seen (a database backend that exits takes its
    time with it: an undercount, never the negative sum a difference of totals gave)."""
    used: dict[str, float] = {}
    for (label, pid), t in after.items():
        used[label] = used.get(label, 0.0) + max(t - before.get((label, pid), 0.0), 0.0)
    return used


@dataclass
class RssSampler:
    """Resident memory of processes, sampled every `every` seconds while running."""

    pids: list[int]
    every: float = 0.25
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # pid → [(t, MB)]

    async def run(self, stop_event: asyncio.Event) -> None:
        while not stop_event.is_set():
            for pid in self.pids:
                try:
                    mb = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.samples.setdefault(pid, []).append((time.monotonic(), mb))
            await asyncio.sleep(self.every)

    def peak(self) -> float:
        return max((mb for s in self.samples.values() for _, mb in s), default=0.0)

    def growth(self) -> float:
        """Largest rise, per process, from the median of its first quarter to the median of its last quarter."""
        rises = []
        for s in self.samples.values():
            if len(s) >= 8:
                q = len(s) // 4
                first, last = sorted(mb for _, mb in s[:q]), sorted(mb for _, mb in s[-q:])
                rises.append(last[len(last) // 2] - first[len(first) // 2])
        return max(rises, default=0.0)
