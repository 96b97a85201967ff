"""The opt-in automatic re-check (off by default; `ppu institutions auto-recheck`): for each institution that turned
it on, the meters where one of its enabled providers has not answered a lookup sent more than its configured age
ago are marked for rebroadcast, as Confirm support would mark them, by "system (auto re-check)" — at most its
`max_per_hour` meters in any hour, oldest silence first, each audited as the system's action. Run by the sweeper
(one active process) about once a minute.

It looks at the shared answers of the institution's own providers only, and marks for that institution only.
"""

from __future__ import annotations

import uuid

from db.audit import AuditRow, write_audit
from kernel.dbconn import Db
from workers.confirm_support import Mark, mark_for_rebroadcast
from workers.unit_of_work import UnitOfWork

MARKED_BY = "system (auto re-check)"
SOURCE = "ppu/auto-recheck"


async def recheck_due(conn: Db, work: UnitOfWork, limit: int = 500) -> int:
    """Inside the caller's transaction: marks what is due; returns how many meters it marked."""
    due = await conn.fetch(
        """WITH room AS (
               SELECT a.institution_id, a.after,
                      a.max_per_hour - (SELECT count(*) FROM audit_log l
                                        WHERE l.action = 'auto_recheck' AND l.institution_id = a.institution_id
                                          AND l.at > now() - interval '1 hour') AS room
               FROM auto_recheck a),
           silent AS (
               SELECT r.institution_id, s.meter_number, min(s.last_lookup_sent_at) AS since, r.room
               FROM room r
               JOIN institution_providers ip ON ip.institution_id = r.institution_id
               JOIN providers p ON p.provider_id = ip.provider_id AND p.enabled
               JOIN meter_support s ON s.provider_id = ip.provider_id AND s.status = 'unconfirmed'
                                   AND s.last_lookup_sent_at < now() - r.after
               WHERE r.room > 0 AND NOT EXISTS (
                   SELECT 1 FROM rebroadcast_marks m
                   WHERE m.meter_number = s.meter_number AND m.institution_id = r.institution_id)
               GROUP BY r.institution_id, s.meter_number, r.room),
           ranked AS (
               SELECT *, row_number() OVER (PARTITION BY institution_id ORDER BY since, meter_number) AS n FROM silent)
           SELECT institution_id, meter_number, since FROM ranked WHERE n <= room
           ORDER BY meter_number, institution_id LIMIT $1""",
        limit,
    )
    if not due:
        return 0
    await work.lock_meters(r["meter_number"] for r in due)  # meters first, as every other writer
    marks = [Mark(r["meter_number"], MARKED_BY, r["institution_id"], str(uuid.uuid4())) for r in due]
    await mark_for_rebroadcast(conn, work, marks, SOURCE)
    await write_audit(
        conn,
        [
            AuditRow(
                "system",
                r["institution_id"],
                "auto_recheck",
                r["meter_number"],
                "marked",
                {"unanswered_since": r["since"].isoformat(), "correlation_id": m.cause},
            )
            for r, m in zip(due, marks, strict=True)
        ],
    )
    return len(due)
