"""Lookup worker: purchase attempts in; rounds opened, attempts joined to rounds, or routed/blocked at once.

Per attempt (design section 3): an unknown meter opens a `first_seen` round to every enabled provider; a meter
the attempt's institution marked for rebroadcast opens a `rebroadcast` round to that institution's enabled
providers (another institution's mark waits for that institution's own attempt); a meter with an open round
joins it; otherwise the attempt is decided now, among the institution's own providers, and the chosen provider
gets a `routine` lookup. Nobody eligible: blocked.
"""

from __future__ import annotations

import uuid

from domain.routing import decide
from kernel.dbconn import Db
from schemas.lookup import LookupReason
from schemas.purchase import PurchaseAttempted
from workers.inbound import Inbound
from workers.outbox import Outbox
from workers.rounds import RoundToOpen, decide_waiting, open_rounds
from workers.routing_context import Decided, load_context, record_decisions


async def handle_purchase_attempts(
    batch: list[Inbound[PurchaseAttempted]], conn: Db, out: Outbox, deadline_seconds: float
) -> None:
    events = [m.event for m in batch]
    meters = sorted({e.data.meter_number for e in events})
    new_meters = {
        r["meter_number"]
        for r in await conn.fetch(
            """INSERT INTO meters (meter_number) SELECT unnest($1::text[]) ORDER BY 1
           ON CONFLICT DO NOTHING RETURNING meter_number""",
            meters,
        )
    }
    fresh = {
        r["attempt_id"]
        for r in await conn.fetch(
            """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at)
           SELECT a, m, i, t FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS u(a, m, i, t)
           ON CONFLICT (attempt_id) DO NOTHING RETURNING attempt_id""",
            [e.data.attempt_id for e in events],
            [e.data.meter_number for e in events],
            [e.data.institution_id for e in events],
            [e.time for e in events],
        )
    }
    ctx = await load_context(conn, meters, sorted({e.data.institution_id for e in events}), lock=True)
    open_round = {
        r["meter_number"]: r["round_id"]
        for r in await conn.fetch(
            """SELECT meter_number, round_id FROM lookup_rounds
               WHERE meter_number = ANY($1::text[]) AND closed_at IS NULL""",
            meters,
        )
    }
    enabled = sorted(pid for pid, (on, _health) in ctx.providers.items() if on)
    to_open: dict[str, RoundToOpen] = {}
    joiners: list[tuple[uuid.UUID, str]] = []  # (attempt, meter) waiting on a round
    decided: list[Decided] = []
    routine: list[RoundToOpen] = []
    for e in events:
        a = e.data
        if a.attempt_id not in fresh:
            continue  # the same attempt again under a new event id: it has (or will get) its one decision
        fresh.discard(a.attempt_id)
        meter = ctx.meters[a.meter_number]
        reason: LookupReason | None = None
        asked = enabled
        if a.meter_number in new_meters:
            reason = "first_seen"
        elif a.institution_id in meter.marked_by:
            reason, asked = "rebroadcast", ctx.enabled_for(a.institution_id)
        if a.meter_number in open_round or a.meter_number in to_open:
            joiners.append((a.attempt_id, a.meter_number))
        elif reason is not None and asked:
            to_open[a.meter_number] = RoundToOpen(
                a.meter_number, reason, asked, a.institution_id, str(a.attempt_id), str(e.id)
            )
            joiners.append((a.attempt_id, a.meter_number))
        else:
            inst = a.institution_id
            d = decide(a.attempt_id, ctx.candidates(meter, inst), ctx.prefs(meter, inst), meter.preferred.get(inst))
            decided.append(Decided(a.attempt_id, a.meter_number, d, str(e.id)))
            if d.provider_id is not None:
                routine.append(
                    RoundToOpen(
                        a.meter_number,
                        "routine",
                        [d.provider_id],
                        a.institution_id,
                        str(a.attempt_id),
                        str(e.id),
                    )
                )
    for r in await open_rounds(conn, out, [*to_open.values(), *routine], deadline_seconds):
        if r.reason != "routine":
            open_round[r.meter_number] = r.round_id
    if joiners:
        await conn.execute(
            """UPDATE purchase_attempts p SET round_id = u.r FROM unnest($1::uuid[], $2::uuid[]) AS u(a, r)
               WHERE p.attempt_id = u.a""",
            [a for a, _ in joiners],
            [open_round[m] for _, m in joiners],
        )
    await record_decisions(conn, out, decided)
    # Joining a round that already has answers may be decidable right away.
    joined_existing = sorted({open_round[m] for _, m in joiners if m not in to_open}, key=str)
    if joined_existing:
        await decide_waiting(conn, out, joined_existing, expired=False)
