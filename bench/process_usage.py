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


def _jstat(option: str) -> list[dict[str, str]]:
    """`jstat OPTION` of every local Java process, one row (column → value) each; the ones it cannot read left out.
    jstat is the JDK's own reader of the JVM's performance counters: no agent attached to the broker, nothing to
    install beside the JDK."""
    rows = []
    for p in psutil.process_iter(["name"]):
        if p.info["name"] != "java":
            continue
        try:
            done = subprocess.run(["jstat", option, str(p.pid)], capture_output=True, text=True, timeout=10, check=True)
            head, values = done.stdout.splitlines()[:2]
            # Not strict: the last column (a failed method) may hold a space.
            rows.append(dict(zip(head.split(), values.split(), strict=False)))
        except (OSError, subprocess.SubprocessError, ValueError):
            continue
    return rows


def broker_jit_seconds() -> float | None:
    """Seconds the local Kafka broker has spent compiling (its JVM's JIT) so far, summed over the local Java
    processes; None when none can be read (no local broker, or no `jstat`)."""
    rows = _jstat("-compiler")
    return sum(float(r["Time"]) for r in rows) if rows else None


def broker_pauses() -> tuple[int, float] | None:
    """The local Java processes' garbage-collector pauses so far, summed: how many, and seconds. Young and full
    collections and the stop-the-world phases of concurrent cycles, as `jstat -gc` counts them; None when none can be
    read."""
    rows = _jstat("-gc")
    if not rows:
        return None
    count = sum(int(r.get(k, "0")) for r in rows for k in ("YGC", "FGC", "CGC"))
    return count, sum(float(r["GCT"]) for r in rows)


def broker_counters() -> dict[str, float] | None:
    """The local broker's collector pauses (how many, ms) and JIT compile seconds so far; None when unreadable."""
    paused, compiled = broker_pauses(), broker_jit_seconds()
    if paused is None or compiled is None:
        return None
    return {"gc_pauses": paused[0], "gc_pause_ms": paused[1] * 1000, "jit_s": compiled}


def counted_between(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float]:
    """What each counter of `broker_counters` added between two readings (nothing when either is missing)."""
    return {} if before is None or after is None else {k: after[k] - before[k] for k in before}


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
