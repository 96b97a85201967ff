"""Command consumer: operators' Confirm support commands; mark for rebroadcast, reset support, audit.

Rejected (with a result event and an audit row, nothing changed): a command without a valid proof (an HMAC by
the deployment's signing key, ppu/command_proof.py), an operator who is not a user with the operator or admin
role at the institution named, or an unknown meter. Everything is per institution (docs/tenancy.md): the mark
is the institution's, and only the providers enabled for it that have not confirmed support become Unconfirmed,
for it alone. Marking a meter the institution already marked changes nothing. The command id is the envelope
id, so the inbox makes a command sent twice count once.
"""

from __future__ import annotations

from typing import Literal

from db.audit import AuditRow, write_audit
from domain.command_proof import verify
from kernel.dbconn import Db
from schemas.commands import CommandResult, CommandResultData, ConfirmSupportRequested
from schemas.meter_events import MarkedForRebroadcast, MarkedForRebroadcastData
from workers.inbound import Inbound
from workers.outbox import Outbox

SOURCE = "ppu/commands"
Outcome = Literal["marked", "already_marked", "rejected"]


async def handle_confirm_support(
    batch: list[Inbound[ConfirmSupportRequested]], conn: Db, out: Outbox, signing_key: str | None
) -> None:
    commands = [m.event for m in batch]
    known = {
        r["meter_number"]
        for r in await conn.fetch(
            "SELECT meter_number FROM meters WHERE meter_number = ANY($1::text[]) ORDER BY meter_number FOR UPDATE",
            sorted({c.data.meter_number for c in commands}),
        )
    }
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
    audit: list[AuditRow] = []
    marks: list[ConfirmSupportRequested] = []
    for c in commands:
        d = c.data
        outcome: Outcome
        reason = None
        if signing_key is None or not verify(c, signing_key):
            outcome, reason = "rejected", "the command carries no valid proof of who issued it"
        elif (d.institution_id, d.operator) not in allowed:
            outcome, reason = "rejected", f"{d.operator} of {d.institution_id} may not confirm support"
        elif d.meter_number not in known:
            outcome, reason = "rejected", f"unknown meter {d.meter_number}"
        elif (d.meter_number, d.institution_id) in marked:
            outcome = "already_marked"
        else:
            outcome = "marked"
            marked.add((d.meter_number, d.institution_id))
            marks.append(c)
        out.emit(
            "command_results",
            CommandResult.new(
                CommandResultData(command_id=c.id, meter_number=d.meter_number, outcome=outcome, reason=reason),
                source=SOURCE,
                correlationid=str(c.id),
                causationid=str(c.id),
            ),
        )
        details = {"command_id": str(c.id), "reason": reason, "sent_at": c.time.isoformat()}
        audit.append(AuditRow(d.operator, d.institution_id, "confirm_support", d.meter_number, outcome, details))
    await _mark(conn, out, marks)
    await write_audit(conn, audit)


async def _mark(conn: Db, out: Outbox, marks: list[ConfirmSupportRequested]) -> None:
    """Marks the meters for the institutions; for each, every provider enabled for it that has not confirmed
    support becomes Unconfirmed for it, from now (the database's clock) on."""
    if not marks:
        return
    meters, who, where = (
        [c.data.meter_number for c in marks],
        [c.data.operator for c in marks],
        [c.data.institution_id for c in marks],
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
    for c in marks:
        out.emit(
            "meter_events",
            MarkedForRebroadcast.new(
                MarkedForRebroadcastData(
                    meter_number=c.data.meter_number,
                    marked_by=c.data.operator,
                    institution_id=c.data.institution_id,
                    marked_at=marked_at,
                ),
                source=SOURCE,
                correlationid=str(c.id),
                causationid=str(c.id),
            ),
        )
