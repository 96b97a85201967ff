"""Prometheus metrics every worker process exposes (prometheus-client), on PPU_METRICS_PORT when set, and the
liveness endpoint beside them: `/healthz` answers 503 while a partition is stopped (a record that can be neither
applied nor dead-lettered), naming it and why."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

from domain.health import Health

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
DECISION_SECONDS = Histogram(
    "ppu_decision_latency_seconds",
    "purchase attempt received -> routing decision stored (the attempt's time to the database's)",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60, 120),
)


STOPPED_GAUGE = Gauge(
    "ppu_partition_stopped",
    "1 while a partition is stopped (a record it cannot move past)",
    ["worker", "topic", "partition"],
)
STOPPED: dict[tuple[str, str, int], str] = {}  # (worker, topic, partition) → why


def partition_stopped(worker: str, tp: TopicPartition, reason: str) -> None:
    STOPPED[(worker, tp.topic, tp.partition)] = reason
    STOPPED_GAUGE.labels(worker, tp.topic, tp.partition).set(1)


def partition_moving(worker: str, tp: TopicPartition) -> None:
    if STOPPED.pop((worker, tp.topic, tp.partition), None) is not None:
        STOPPED_GAUGE.labels(worker, tp.topic, tp.partition).set(0)


def liveness() -> tuple[int, dict[str, Any]]:
    stopped = [{"worker": w, "topic": t, "partition": p, "reason": r[:300]} for (w, t, p), r in STOPPED.items()]
    return (503 if stopped else 200), {"status": "stopped partitions" if stopped else "ok", "stopped": stopped}


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Metrics and /healthz on one port (loopback by default), in a daemon thread (prometheus-client's own server
    knows no other path, hence this small WSGI dispatcher)."""
    if not port:
        return
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            status, body = liveness()
            start_response(
                f"{status} {'OK' if status == 200 else 'Service Unavailable'}", [("Content-Type", "application/json")]
            )
            return [json.dumps(body).encode()]
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    server = make_server(host, port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()


def export_health(figures: list[Health]) -> None:
    for h in figures:
        PROVIDER_STATE.labels(h.provider_id).set(STATES[h.state])
        PROVIDER_TIMEOUTS.labels(h.provider_id).set(h.timeouts)
        if h.response_ratio is not None:
            PROVIDER_RATIO.labels(h.provider_id).set(h.response_ratio)
        for q, v in (("0.5", h.p50_ms), ("0.95", h.p95_ms), ("0.99", h.p99_ms)):
            if v is not None:
                PROVIDER_LATENCY.labels(h.provider_id, q).set(v)
