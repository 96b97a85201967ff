"""A consumer's fetch, paced by its traffic.

Busy, the broker holds each fetch up to `PPU_FETCH_MAX_WAIT_MS` for `PPU_FETCH_MIN_BYTES`, so one fetch brings many
records (CPU per attempt at 1,000/s: bench/results/20261206-fetch-wait.md). Held 10 ms, an idle consumer fetched a
hundred times a second: `ppu worker all` idle took 119 ms of CPU a second against 15 with Kafka's defaults, and the
broker about 100 more (`ppu bench --only idle`, bench/results/20261206T213307Z-idle.json). So after
`PPU_FETCH_IDLE_AFTER_MS` without a record the consumer goes back to Kafka's own fetch (held up to 500 ms, answered
at the first byte): twice a second while idle, and the first record after a pause is not held either.

aiokafka sets a fetch's wait and size once, at construction; it reads them from its fetcher for each request it
builds, so they are changed there. That is aiokafka's private state: without it (another aiokafka), the fetch stays
as configured, with a warning.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer

log = structlog.get_logger()

IDLE_WAIT_MS, IDLE_MIN_BYTES = 500, 1  # Kafka's consumer defaults


class FetchPace:
    """For a started consumer: busy is what it was made with (`fetch_max_wait_ms`, `fetch_min_bytes`)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        fetcher: Any = getattr(consumer, "_fetcher", None)
        self.busy = True  # as the consumer was made
        self._fetcher: Any = None
        if not all(hasattr(fetcher, a) for a in ("_fetch_max_wait_ms", "_fetch_min_bytes")):
            log.warning("this aiokafka's fetch cannot be paced: fetching as configured, also when idle")
            return
        self._fetcher = fetcher
        self.busy_settings: tuple[int, int] = (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes)

    def traffic(self, records: int) -> None:
        """What the last take from the consumer brought: some records (busy), or none for the idle interval."""
        busy = records > 0
        if busy == self.busy or self._fetcher is None:
            return
        self.busy = busy
        wait_ms, min_bytes = self.busy_settings if busy else (IDLE_WAIT_MS, IDLE_MIN_BYTES)
        self._fetcher._fetch_max_wait_ms, self._fetcher._fetch_min_bytes = wait_ms, min_bytes
