"""Lookup worker: purchase attempts in; the plan (domain/attempts.py) carried out: rounds opened, attempts joined
to rounds, or routed/blocked at once."""

from __future__ import annotations

from domain.attempts import Attempt, plan_attempts
from messaging.inbound import Inbound
from schemas.purchase import PurchaseAttempted
from workers.rounds import decide_waiting, open_rounds
from workers.routing_context import load_context, record_decisions
from workers.unit_of_work import UnitOfWork


async def handle_purchase_attempts(
    batch: list[Inbound[PurchaseAttempted]], work: UnitOfWork, deadline_seconds: float, budget_seconds: float
) -> None:
    conn, out = work.conn, work
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
    attempts = []
    for e in events:
        if e.data.attempt_id in fresh:  # the same attempt again under a new event id has (or will get) its one decision
            fresh.discard(e.data.attempt_id)
            attempts.append(Attempt(e.data.attempt_id, e.data.meter_number, e.data.institution_id, str(e.id)))
    plan = plan_attempts(attempts, ctx, new_meters, set(open_round))
    to_open, joiners = plan.rounds, plan.joiners
    for r, round_id in await open_rounds(conn, out, [*to_open.values(), *plan.routine], deadline_seconds):
        if r.reason != "routine":
            open_round[r.meter_number] = round_id
    if joiners:
        await conn.execute(
            """UPDATE purchase_attempts p SET round_id = u.r, joined_at = now()
               FROM unnest($1::uuid[], $2::uuid[]) AS u(a, r) WHERE p.attempt_id = u.a""",
            [a for a, _ in joiners],
            [open_round[m] for _, m in joiners],
        )
    await record_decisions(conn, out, plan.decided)
    # Joining a round that already has answers may be decidable right away.
    joined_existing = sorted({open_round[m] for _, m in joiners if m not in to_open}, key=str)
    if joined_existing:
        await decide_waiting(conn, out, joined_existing, expired=False, budget_seconds=budget_seconds)
