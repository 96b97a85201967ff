"""Lookup worker: purchase attempts in; the plan (domain/attempts.py) carried out: rounds opened, attempts joined
to rounds, or routed/blocked at once."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.attempts import Attempt, plan_attempts
from messaging.inbound import Inbound
from schemas.purchase import PurchaseAttempted
from workers.decisions import DECISION_COLUMNS, DECISION_VALUES, decision_columns, publish_decisions
from workers.rounds import decide_waiting, open_rounds
from workers.routing_context import load_lookup_context
from workers.unit_of_work import UnitOfWork

# When a waiting attempt's budget starts (purchase_attempts.joined_at): the purchase's own time, as the purchase
# service's timeout counts from its send, not from when this worker got to it (a backlog, a batch in progress).
# Never in the future (the sender's clock may be ahead), and never more than half the budget back: the sweeper's
# watermark (workers/sweeper.py) passes waits up to a budget before its sweep, so a batch that began less than
# half a budget before a sweep and committed after it is still seen; an attempt older than that is decided half a
# budget after it is read, at the latest.
BUDGET_FROM = "greatest(least(t, now()), now() - make_interval(secs => $9::float8 / 2))"  # $9: the budget

# An attempt id is the purchase service's, and the attempts table cannot hold it unique: partitioned by time, its key
# is (attempt_id, recorded_at). Under the meter's lock, one batch at a time sees an attempt again; the same id for
# another meter is another meter's lock, so two lookup processes each stored it (and decided it) unseen by the other.
# A transaction lock per id, taken before the meters' (both in one order, so batches cannot deadlock; in the meters'
# lock statement, workers/meter_locks.LOCK_AFTER_KEYS) and in a statement before the facts read (which then sees what
# the holder committed), makes the second wait for the first and refuse its copy. 32-bit keys under a class of our
# own: a collision only makes two batches wait in turn.
ATTEMPT_LOCK_CLASS = 1347441985  # b"PPUA"


def _lock_key(attempt_id: uuid.UUID) -> int:
    x = attempt_id.int
    folded = (x ^ (x >> 32) ^ (x >> 64) ^ (x >> 96)) & 0xFFFFFFFF
    return folded - (1 << 32) if folded >= 1 << 31 else folded


def _waited(now: datetime, received_at: datetime | None) -> float:
    """Seconds from an attempt's time to its decision at `now`, as the database works it out elsewhere
    (`record_decisions`): never negative, whatever the sender's clock; 0 for an attempt without a time."""
    return max((now - received_at).total_seconds(), 0.0) if received_at is not None else 0.0


async def handle_purchase_attempts(
    batch: list[Inbound[PurchaseAttempted]], work: UnitOfWork, deadline_seconds: float, budget_seconds: float
) -> None:
    conn, out = work.conn, work
    events = [m.event for m in batch]
    meters = sorted({e.data.meter_number for e in events})
    # The attempt ids, then the meters, are locked (the new meters created) from here on: the attempts seen before
    # (within the live window) cannot change under us, and no other batch opens a round on these meters (migration
    # 0013). The same attempt again under a new event id has its one decision; its id again for another meter or
    # institution is not the same purchase, and is refused.
    attempt_ids = [e.data.attempt_id for e in events]
    institutions = sorted({e.data.institution_id for e in events})
    id_locks = (ATTEMPT_LOCK_CLASS, [_lock_key(a) for a in attempt_ids])
    ctx, facts = await load_lookup_context(conn, meters, institutions, attempt_ids, id_locks)
    known, open_round, new_meters = facts.seen, facts.open_rounds, facts.created
    attempts: list[Attempt] = []
    for i, e in enumerate(events):
        d = e.data
        first = known.get(d.attempt_id)
        if first is None:
            known[d.attempt_id] = (d.meter_number, d.institution_id)
            attempts.append(Attempt(d.attempt_id, d.meter_number, d.institution_id, str(e.id), e.time))
        elif first != (d.meter_number, d.institution_id):
            # Which meter and institution hold it is not said: the letter may be read by the other institution.
            out.reject(i, f"attempt id {d.attempt_id} is already used for another meter or institution")
    if not attempts:
        return
    plan = plan_attempts(attempts, ctx, new_meters, set(open_round))
    to_open, joiners = plan.rounds, plan.joiners
    for r, round_id in await open_rounds(out, [*to_open.values(), *plan.routine], deadline_seconds):
        if r.reason != "routine":
            open_round[r.meter_number] = round_id
    # Each attempt is written once, as it stands after this batch: waiting on a round, or decided. With the
    # decisions made at once, written with the outbox (nothing below reads them unless it joins an existing round).
    waits_on = {a: open_round[m] for a, m in joiners}
    decided = {d.attempt_id: d.decision for d in plan.decided}
    out.write_later(
        f"""INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, round_id,
                                          joined_at, decided_at, {DECISION_COLUMNS})
            SELECT a, m, i, t, x, CASE WHEN x IS NOT NULL THEN {BUDGET_FROM} END,
                   CASE WHEN u.r IS NOT NULL THEN now() END, {DECISION_VALUES}
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::uuid[], $6::text[], $7::text[],
                        $8::text[]) AS u(a, m, i, t, x, p, r, s)""",
        [a.attempt_id for a in attempts],
        [a.meter_number for a in attempts],
        [a.institution_id for a in attempts],
        [a.received_at for a in attempts],
        [waits_on.get(a.attempt_id) for a in attempts],
        *decision_columns([decided.get(a.attempt_id) for a in attempts]),
        budget_seconds,
    )
    now = await out.now()
    received = {a.attempt_id: a.received_at for a in attempts}
    await publish_decisions(conn, out, plan.decided, {a: _waited(now, received[a]) for a in decided})
    # Joining a round that already has answers may be decidable right away.
    joined_existing = sorted({open_round[m] for _, m in joiners if m not in to_open}, key=str)
    if joined_existing:
        await out.write_pending()  # the attempts that joined are read back
        await decide_waiting(conn, out, joined_existing, expired=False, budget_seconds=budget_seconds)
