"""Prometheus metrics of the HTTP bridge (served with the worker's others on PPU_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RETRIES = Counter("ppu_bridge_retries_total", "provider calls tried again (5xx, timeouts, lost answers)", ["provider"])
BREAKER_CHANGES = Counter(
    "ppu_bridge_breaker_changes_total", "circuit-breaker state changes, by the state entered", ["provider", "state"]
)
BREAKER_OPEN = Gauge("ppu_bridge_breaker_open", "1 while the circuit breaker is open or half-open", ["provider"])
OUTCOMES = Counter("ppu_bridge_outcomes_total", "lookups by outcome", ["provider", "outcome"])
IN_FLIGHT = Gauge("ppu_bridge_lookups_in_flight", "lookups taken from Kafka and not yet finished", ["provider"])
RELOADS = Counter(
    "ppu_bridge_settings_reloads_total", "settings re-read that changed the provider's client", ["provider"]
)
