"""Command consumer: operators' Confirm support commands; mark for rebroadcast, reset support, audit.

Rejected (with a result event, nothing changed): an operator who is not a user with the operator or admin role
at the institution named, or an unknown meter. Marking an already marked meter changes nothing. Every
command, accepted or not, is written to the audit log. The command id is the envelope id, so the inbox makes a
command sent twice count once.
"""

from __future__ import annotations

import json
from typing import Literal

from ppu.dbconn import Db
from schemas.commands import CommandResult, CommandResultData, ConfirmSupportRequested
from schemas.meter_events import (
    MarkedForRebroadcast,
    MarkedForRebroadcastData,
    SupportChanged,
    SupportChangedData,
)
from workers.inbound import Inbound
from workers.outbox import Outbox

SOURCE = "ppu/commands"
Outcome = Literal["marked", "already_marked", "rejected"]


async def handle_confirm_support(batch: list[Inbound[ConfirmSupportRequested]], conn: Db, out: Outbox) -> None:
    commands = [m.event for m in batch]
    meters = {
        r["meter_number"]: r["marked_for_rebroadcast"]
        for r in await conn.fetch(
            """SELECT meter_number, marked_for_rebroadcast FROM meters WHERE meter_number = ANY($1::text[])
           ORDER BY meter_number FOR UPDATE""",
            sorted({c.data.meter_number for c in commands}),
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
    audit: list[tuple[str, str, str, str, str]] = []
    marks: list[ConfirmSupportRequested] = []
    for c in commands:
        d = c.data
        outcome: Outcome
        reason = None
        if (d.institution_id, d.operator) not in allowed:
            outcome, reason = "rejected", f"{d.operator} of {d.institution_id} may not confirm support"
        elif d.meter_number not in meters:
            outcome, reason = "rejected", f"unknown meter {d.meter_number}"
        elif meters[d.meter_number]:
            outcome = "already_marked"
        else:
            outcome = "marked"
            meters[d.meter_number] = True
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
        audit.append(
            (
                d.operator,
                d.institution_id,
                d.meter_number,
                outcome,
                json.dumps({"command_id": str(c.id), "reason": reason, "sent_at": c.time.isoformat()}),
            )
        )
    await _mark(conn, out, marks)
    await conn.execute(
        """INSERT INTO audit_log (actor, institution_id, action, target, outcome, details)
           SELECT a, i, 'confirm_support', t, o, d::jsonb
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(a, i, t, o, d)""",
        *[list(col) for col in zip(*audit, strict=True)],
    )


async def _mark(conn: Db, out: Outbox, marks: list[ConfirmSupportRequested]) -> None:
    """Marks the meters; every provider that has not confirmed support becomes unconfirmed, from then on."""
    if not marks:
        return
    meters, who, where, when = (
        [c.data.meter_number for c in marks],
        [c.data.operator for c in marks],
        [c.data.institution_id for c in marks],
        [c.time for c in marks],
    )
    await conn.execute(
        """UPDATE meters m SET marked_for_rebroadcast = true, marked_by = u.who, marked_by_institution = u.inst,
                               marked_at = u.at, updated_at = now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(meter, who, inst, at)
           WHERE m.meter_number = u.meter""",
        meters,
        who,
        where,
        when,
    )
    reset = await conn.fetch(
        """UPDATE meter_support s SET status = 'unconfirmed', unconfirmed_since = u.at
           FROM unnest($1::text[], $2::timestamptz[]) AS u(meter, at), meter_support old
           WHERE s.meter_number = u.meter AND s.status <> 'supported'
             AND old.meter_number = s.meter_number AND old.provider_id = s.provider_id
           RETURNING s.meter_number, s.provider_id, old.status AS previous, s.last_response_at""",
        meters,
        when,
    )
    by_meter = {c.data.meter_number: c for c in marks}
    for c in marks:
        out.emit(
            "meter_events",
            MarkedForRebroadcast.new(
                MarkedForRebroadcastData(
                    meter_number=c.data.meter_number,
                    marked_by=c.data.operator,
                    institution_id=c.data.institution_id,
                    marked_at=c.time,
                ),
                source=SOURCE,
                correlationid=str(c.id),
                causationid=str(c.id),
            ),
        )
    for r in sorted(reset, key=lambda r: (r["meter_number"], r["provider_id"])):
        if r["previous"] != "unconfirmed":
            c = by_meter[r["meter_number"]]
            out.emit(
                "meter_events",
                SupportChanged.new(
                    SupportChangedData(
                        meter_number=r["meter_number"],
                        provider_id=r["provider_id"],
                        previous_status=r["previous"],
                        status="unconfirmed",
                        last_response_at=r["last_response_at"],
                    ),
                    source=SOURCE,
                    correlationid=str(c.id),
                    causationid=str(c.id),
                ),
            )
