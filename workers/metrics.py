"""Prometheus metrics every worker process exposes (prometheus-client), on PPU_METRICS_PORT when set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from providers.health import Health

MESSAGES = Counter("ppu_messages_total", "messages handled", ["worker", "topic", "outcome"])
BATCHES = Counter("ppu_batches_total", "batches applied", ["worker"])
DEAD_LETTERS = Counter("ppu_dead_letters_total", "messages sent to a dead-letter topic", ["worker", "stage"])
BATCH_SECONDS = Histogram("ppu_batch_duration_seconds", "time to apply one batch", ["worker"])
LAG = Gauge("ppu_consumer_lag", "messages behind the high watermark", ["worker", "topic", "partition"])
LAST_PROGRESS = Gauge("ppu_last_progress_timestamp_seconds", "when the worker last made progress", ["worker"])
PROVIDER_STATE = Gauge("ppu_provider_health_state", "0 HEALTHY, 1 DEGRADED, 2 DOWN, 3 MISCONFIGURED", ["provider"])
PROVIDER_RATIO = Gauge("ppu_provider_response_ratio", "answered / due lookups, last 5 minutes", ["provider"])
PROVIDER_LATENCY = Gauge(
    "ppu_provider_latency_ms", "answer latency percentiles, last 5 minutes", ["provider", "quantile"]
)
PROVIDER_TIMEOUTS = Gauge("ppu_provider_timeouts", "lookups unanswered at their deadline, last 5 minutes", ["provider"])
STATES = {"HEALTHY": 0, "DEGRADED": 1, "DOWN": 2, "MISCONFIGURED": 3}
PUBLISHED = Counter("ppu_outbox_published_total", "outbox rows published", ["topic"])


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="127.0.0.1")


def export_health(figures: list[Health]) -> None:
    for h in figures:
        PROVIDER_STATE.labels(h.provider_id).set(STATES[h.state])
        PROVIDER_TIMEOUTS.labels(h.provider_id).set(h.timeouts)
        if h.response_ratio is not None:
            PROVIDER_RATIO.labels(h.provider_id).set(h.response_ratio)
        for q, v in (("0.5", h.p50_ms), ("0.95", h.p95_ms), ("0.99", h.p99_ms)):
            if v is not None:
                PROVIDER_LATENCY.labels(h.provider_id, q).set(v)
