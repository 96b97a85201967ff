"""Provider health rules, over the figures of one window: response ratio, latency percentiles and timeouts.

States (documented thresholds): DOWN when at least 5 lookups were due in the window and under 20% were answered;
DEGRADED when under 90% were answered or the p95 latency is over 5 s; otherwise HEALTHY. A provider with too
few lookups to judge keeps the state it has. A DOWN provider comes back (DEGRADED) as soon as it answers again: the
response consumer lifts it at once, and the evaluation never calls DOWN a provider whose latest due lookup was
answered. DOWN providers are still asked in fan-outs (that is how they can answer again) but routing skips them.
MISCONFIGURED (the provider refuses what the HTTP bridge sends) is set and cleared by the bridge alone; routing
skips it as it skips DOWN, and the console shows it with the provider's last error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MIN_DUE, DOWN_BELOW, DEGRADED_BELOW, DEGRADED_P95_S = 5, 0.2, 0.9, 5.0


@dataclass(frozen=True)
class Health:
    provider_id: str
    name: str
    enabled: bool
    window_minutes: int
    sent: int
    due: int  # lookups whose round deadline has passed, or that were answered
    answered: int
    timeouts: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    last_seen: datetime | None
    last_due_answered: bool | None = None
    stored: str = "HEALTHY"  # the state routing uses now
    detail: str | None = None  # MISCONFIGURED: the provider's last refusal
    electrum_id: str | None = None

    @property
    def response_ratio(self) -> float | None:
        return self.answered / self.due if self.due else None

    @property
    def state(self) -> str:
        if self.stored == "MISCONFIGURED":  # silence follows from the refusals; the refusal is the news
            return self.stored
        return self.evaluated or self.stored

    @property
    def evaluated(self) -> str | None:
        """The state the window shows, or None when it holds too few lookups to judge."""
        ratio = self.response_ratio
        if ratio is None or self.due < MIN_DUE:
            return None
        if ratio < DOWN_BELOW:
            return "DEGRADED" if self.last_due_answered else "DOWN"
        if ratio < DEGRADED_BELOW or (self.p95_ms is not None and self.p95_ms > DEGRADED_P95_S * 1000):
            return "DEGRADED"
        return "HEALTHY"
