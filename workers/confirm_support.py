"""Command consumer: operators' Confirm support commands judged (domain/confirm_support.py); marks, resets, results
and audit rows written. The command id is the envelope id, so the inbox makes a command sent twice count once.
"""

from __future__ import annotations

from typing import NamedTuple

from db.audit import AuditRow, write_audit
from domain.command_proof import verify
from domain.confirm_support import judge
from kernel.dbconn import Db
from messaging.inbound import Inbound
from schemas.commands import CommandResult, CommandResultData, ConfirmSupportRequested
from schemas.meter_events import MarkedForRebroadcast, MarkedForRebroadcastData
from workers.unit_of_work import UnitOfWork

SOURCE = "ppu/commands"


async def handle_confirm_support(
    batch: list[Inbound[ConfirmSupportRequested]], work: UnitOfWork, signing_key: str | None
) -> None:
    conn, out = work.conn, work
    commands = [m.event for m in batch]
    known = await work.lock_meters(c.data.meter_number for c in commands)
    marked = {
        (r["meter_number"], r["institution_id"])
        for r in await conn.fetch(
            "SELECT meter_number, institution_id FROM rebroadcast_marks WHERE meter_number = ANY($1::text[])",
            sorted(known),
        )
    }
    allowed = {
        (r["institution_id"], r["username"])
        for r in await conn.fetch(
            """SELECT institution_id, username FROM console_users
           WHERE role IN ('operator', 'admin')
             AND (institution_id, username) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
            [c.data.institution_id for c in commands],
            [c.data.operator for c in commands],
        )
    }
    proven = {str(c.id) for c in commands if signing_key is not None and verify(c, signing_key)}
    judged = judge(commands, proven, allowed, known, marked)
    for j in judged:
        c, d = j.command, j.command.data
        out.emit(
            "command_results",
            CommandResult.new(
                CommandResultData(command_id=c.id, meter_number=d.meter_number, outcome=j.verdict, reason=j.reason),
                source=SOURCE,
                correlationid=str(c.id),
                causationid=str(c.id),
            ),
        )
    audit = [
        AuditRow(
            j.command.data.operator,
            j.command.data.institution_id,
            "confirm_support",
            j.command.data.meter_number,
            j.verdict,
            {"command_id": str(j.command.id), "reason": j.reason, "sent_at": j.command.time.isoformat()},
        )
        for j in judged
    ]
    marks = [
        Mark(j.command.data.meter_number, j.command.data.operator, j.command.data.institution_id, str(j.command.id))
        for j in judged
        if j.verdict == "marked"
    ]
    await mark_for_rebroadcast(conn, out, marks, SOURCE)
    await write_audit(conn, audit)


class Mark(NamedTuple):
    meter_number: str
    marked_by: str
    institution_id: str
    cause: str  # the command's id, or what else caused the mark: the correlation id of its event


async def mark_for_rebroadcast(conn: Db, out: UnitOfWork, marks: list[Mark], source: str) -> None:
    """Marks the meters for the institutions; for each, every provider enabled for it that has not confirmed
    support becomes Unconfirmed for it, from now (the database's clock) on. Confirm support and the automatic
    re-check (workers/auto_recheck.py) both mark through here."""
    if not marks:
        return
    meters, who, where = (
        [m.meter_number for m in marks],
        [m.marked_by for m in marks],
        [m.institution_id for m in marks],
    )
    marked_at = await conn.fetchval(
        """WITH m AS (
               INSERT INTO rebroadcast_marks (meter_number, institution_id, marked_by, marked_at)
               SELECT m, i, w, now() FROM unnest($1::text[], $2::text[], $3::text[]) AS u(m, i, w)
               RETURNING marked_at)
           SELECT max(marked_at) FROM m""",
        meters,
        where,
        who,
    )
    await conn.execute(
        """INSERT INTO support_resets (meter_number, provider_id, institution_id, since)
           SELECT u.m, ip.provider_id, u.i, now()
           FROM unnest($1::text[], $2::text[]) AS u(m, i)
           JOIN institution_providers ip ON ip.institution_id = u.i
           LEFT JOIN meter_support s ON s.meter_number = u.m AND s.provider_id = ip.provider_id
           WHERE coalesce(s.status, 'unconfirmed') <> 'supported'
           ON CONFLICT (meter_number, provider_id, institution_id) DO UPDATE SET since = excluded.since""",
        meters,
        where,
    )
    for m in marks:
        out.emit(
            "meter_events",
            MarkedForRebroadcast.new(
                MarkedForRebroadcastData(
                    meter_number=m.meter_number,
                    marked_by=m.marked_by,
                    institution_id=m.institution_id,
                    marked_at=marked_at,
                ),
                source=source,
                correlationid=m.cause,
                causationid=m.cause,
            ),
        )
