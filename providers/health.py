"""Provider health from the lookups themselves: response ratio, latency percentiles and timeouts per window.

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

from ppu.dbconn import Db

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


async def provider_health(conn: Db, window_minutes: int, provider_ids: list[str] | None = None) -> list[Health]:
    rows = await conn.fetch(
        """WITH recent AS (
               SELECT l.provider_id, l.sent_at, l.responded_at, r.deadline
               FROM lookups l JOIN lookup_rounds r USING (round_id)
               WHERE l.sent_at > now() - make_interval(mins => $1))
           SELECT p.provider_id, p.name, p.enabled, p.health, p.health_detail, p.electrum_id,
                  count(x.sent_at) AS sent,
                  count(*) FILTER (WHERE x.responded_at IS NOT NULL OR x.deadline < now()) AS due,
                  count(x.responded_at) AS answered,
                  count(*) FILTER (WHERE x.responded_at IS NULL AND x.deadline < now()) AS timeouts,
                  percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
                      ORDER BY extract(epoch FROM x.responded_at - x.sent_at) * 1000)
                      FILTER (WHERE x.responded_at IS NOT NULL) AS pct,
                  (SELECT max(last_response_at) FROM meter_support s WHERE s.provider_id = p.provider_id) AS last_seen,
                  (array_agg(x.responded_at IS NOT NULL ORDER BY x.sent_at DESC)
                      FILTER (WHERE x.responded_at IS NOT NULL OR x.deadline < now()))[1] AS last_due_answered
           FROM providers p LEFT JOIN recent x ON x.provider_id = p.provider_id
           WHERE $2::text[] IS NULL OR p.provider_id = ANY($2::text[])
           GROUP BY p.provider_id ORDER BY p.provider_id""",
        window_minutes,
        provider_ids,
    )
    out = []
    for r in rows:
        p50, p95, p99 = r["pct"] or (None, None, None)
        out.append(
            Health(
                r["provider_id"],
                r["name"],
                r["enabled"],
                window_minutes,
                r["sent"],
                r["due"],
                r["answered"],
                r["timeouts"],
                p50,
                p95,
                p99,
                r["last_seen"],
                r["last_due_answered"],
                r["health"],
                r["health_detail"],
                r["electrum_id"],
            )
        )
    return out


async def refresh_states(conn: Db, window_minutes: int = 5) -> tuple[list[Health], dict[str, tuple[str, str]]]:
    """Stores each provider's evaluated state; returns the health figures and the changes (before, after)."""
    figures = await provider_health(conn, window_minutes)
    evaluated = {h.provider_id: h.evaluated for h in figures if h.evaluated}
    rows = await conn.fetch(
        """UPDATE providers p SET health = u.state, health_changed_at = now()
           FROM unnest($1::text[], $2::text[]) AS u(id, state), providers old
           WHERE p.provider_id = u.id AND old.provider_id = p.provider_id AND p.health <> u.state
             AND p.health <> 'MISCONFIGURED' -- set and cleared by the HTTP bridge, which sees the refusals
           RETURNING p.provider_id, old.health AS before, p.health AS after""",
        list(evaluated),
        list(evaluated.values()),
    )
    return figures, {r["provider_id"]: (r["before"], r["after"]) for r in rows}
