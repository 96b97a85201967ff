"""The bench reads the local broker's JIT and collector counters with `jstat` (bench/process_usage.py): read from a
running broker, they are numbers, not the None that means "no local broker"."""

from __future__ import annotations

import psutil

from bench.process_usage import broker_jit_seconds, broker_pauses
from kernel.connections import Endpoints


def test_a_running_brokers_counters_are_read(endpoints: Endpoints) -> None:
    if not any(p.info["name"] == "java" for p in psutil.process_iter(["name"])):
        # The suite pointed at a cluster of the user's own (KAFKA_BOOTSTRAP_SERVERS): nothing local to read.
        assert broker_jit_seconds() is None and broker_pauses() is None
        return
    compiled = broker_jit_seconds()
    assert compiled is not None and compiled > 0  # a started broker has compiled something
    paused = broker_pauses()
    assert paused is not None
    count, seconds = paused
    assert count >= 0 and seconds >= 0
