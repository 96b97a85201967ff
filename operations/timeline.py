"""A meter's history as one institution may see it, newest first: rounds, answers, decisions, commands.

Shared: that the meter was first seen (its `first_seen` rounds) and what the institution's own providers answered.
The institution's own: its rebroadcast and routine rounds, its purchases' decisions, its users' actions on the
meter (the audit log). Another institution's rounds, decisions and commands never show.
Paged by time: `before` is the time of the last entry of the previous page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kernel.dbconn import Db


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # round, answer, decision, command
    what: str  # the round's reason, the answer's status, the decision's outcome, the command's action
    who: str | None  # providers asked, the provider that answered, the provider chosen, the user
    detail: str | None


# One meter's entries of every kind; each kind read through an index on the meter (migration 0017).
TIMELINE = """SELECT * FROM (
       SELECT r.opened_at AS at, 'round' AS kind, r.reason AS what, asked.who,
              'deadline ' || to_char(r.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
                  || CASE WHEN r.closed_at IS NULL THEN ', open' ELSE '' END AS detail
       FROM lookup_rounds r
       LEFT JOIN (SELECT l.round_id, string_agg(l.provider_id, ', ' ORDER BY l.provider_id) AS who
                  FROM lookups l JOIN institution_providers ip
                       ON ip.provider_id = l.provider_id AND ip.institution_id = $2
                  WHERE l.meter_number = $1 GROUP BY l.round_id) asked ON asked.round_id = r.round_id
       WHERE r.meter_number = $1 AND (r.reason = 'first_seen' OR r.institution_id = $2)
     UNION ALL
       SELECT l.responded_at, 'answer', l.status, l.provider_id,
              'to the lookup sent ' || to_char(l.sent_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') || ' UTC'
       FROM lookups l JOIN institution_providers ip
            ON ip.provider_id = l.provider_id AND ip.institution_id = $2
       WHERE l.meter_number = $1 AND l.responded_at IS NOT NULL
     UNION ALL
       SELECT a.decided_at, 'decision', a.outcome, a.provider_id, a.reason
       FROM purchase_attempts a WHERE a.meter_number = $1 AND a.institution_id = $2 AND a.outcome IS NOT NULL
     UNION ALL
       SELECT g.at, 'command', g.action || ': ' || g.outcome, g.actor, g.details ->> 'reason'
       FROM audit_log g WHERE g.target = $1 AND g.institution_id = $2
   ) t
   WHERE $3::timestamptz IS NULL OR t.at < $3
   ORDER BY t.at DESC, t.kind LIMIT $4"""


async def meter_timeline(
    conn: Db, institution_id: str, meter_number: str, before: datetime | None = None, limit: int = 50
) -> list[Entry]:
    rows = await conn.fetch(
        TIMELINE,
        meter_number,
        institution_id,
        before,
        limit,
    )
    return [Entry(r["at"], r["kind"], r["what"], r["who"] or None, r["detail"]) for r in rows]
