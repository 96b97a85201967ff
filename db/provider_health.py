"""Provider health figures from the lookups themselves (SQL), judged by the rules in domain/health.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.health import Health
from kernel.dbconn import Db
from kernel.live_window import ids_since

# Figures over each provider's latest lookups in the window, at most this many. Over every lookup of a 5-minute
# window the sweeper's refresh (every 5 s) read, joined and sorted 300,000 rows at 1,000 attempts/s: 2.5 s of a
# core each time, and the soak fell behind once the window had filled (minute 4-5). The latest 2,000 per provider
# are as good a basis for answer rates and latency percentiles, and cost the same at any load.
LATEST_PER_PROVIDER = 2000


async def provider_health(conn: Db, window_minutes: int, provider_ids: list[str] | None = None) -> list[Health]:
    # Lookups and rounds of the window live in the partitions of ids made since a little before it (db/partitions.py):
    # the bound is a parameter, so PostgreSQL plans only those.
    since = ids_since(datetime.now(UTC) - timedelta(minutes=window_minutes))
    rows = await conn.fetch(
        """WITH recent AS (
               SELECT l.provider_id, l.sent_at, l.responded_at, r.deadline
               FROM providers q
               CROSS JOIN LATERAL (
                   SELECT l.provider_id, l.sent_at, l.responded_at, l.round_id FROM lookups l
                   WHERE l.provider_id = q.provider_id AND l.lookup_id >= $3
                     AND l.sent_at > now() - make_interval(mins => $1)
                   ORDER BY l.sent_at DESC LIMIT $4) l
               JOIN lookup_rounds r ON r.round_id = l.round_id AND r.round_id >= $3
               WHERE $2::text[] IS NULL OR q.provider_id = ANY($2::text[]))
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
        since,
        LATEST_PER_PROVIDER,
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
