"""Prometheus metrics every worker process exposes (prometheus-client), on PPU_METRICS_PORT when set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

MESSAGES = Counter("ppu_messages_total", "messages handled", ["worker", "topic", "outcome"])
BATCHES = Counter("ppu_batches_total", "batches applied", ["worker"])
DEAD_LETTERS = Counter("ppu_dead_letters_total", "messages sent to a dead-letter topic", ["worker", "stage"])
BATCH_SECONDS = Histogram("ppu_batch_duration_seconds", "time to apply one batch", ["worker"])
LAG = Gauge("ppu_consumer_lag", "messages behind the high watermark", ["worker", "topic", "partition"])
LAST_PROGRESS = Gauge("ppu_last_progress_timestamp_seconds", "when the worker last made progress", ["worker"])
PROVIDER_DOWN = Gauge("ppu_provider_down", "1 while the provider's evaluated health is DOWN", ["provider"])
PUBLISHED = Counter("ppu_outbox_published_total", "outbox rows published", ["topic"])


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="127.0.0.1")
