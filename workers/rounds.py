"""Lookup rounds: open a fan-out (or a routine lookup), and decide the attempts that wait on rounds."""

from __future__ import annotations

import uuid
from datetime import timedelta

from domain.attempts import LookupPlan
from domain.rounds import WaitingAttempt, settle
from kernel.dbconn import Db
from kernel.ids import id_floor, id_time, new_id
from kernel.live_window import ID_MARGIN, live_until, live_until_id
from schemas.lookup import LookupRequested, LookupRequestedData, RoundExpired, RoundExpiredData
from workers.decisions import record_decisions
from workers.routing_context import load_context
from workers.unit_of_work import UnitOfWork

SOURCE = "ppu/lookup"


async def open_rounds(
    out: UnitOfWork, plans: list[LookupPlan], deadline_seconds: float
) -> list[tuple[LookupPlan, uuid.UUID]]:
    """Queues rounds and their lookups (written with the outbox, `write_later`: nothing in the batch reads them
    before) and one request per provider; returns the plans with round ids.

    A routine round is closed at birth: it asks the chosen provider, but no attempt waits on it.
    """
    if not plans:
        return []
    opened = [(r, new_id()) for r in plans]
    lookups = [(new_id(), r, rid, pid) for r, rid in opened for pid in r.providers]
    # The transaction's clock, as now() in the writes: the deadline the requests carry is the one stored.
    now = await out.now()
    deadline = now + timedelta(seconds=deadline_seconds)
    out.write_later(
        """INSERT INTO lookup_rounds (round_id, meter_number, reason, opened_at, deadline, closed_at,
                                      providers_asked, institution_id)
           SELECT r, m, why, now(), $4, CASE WHEN why = 'routine' THEN now() END, string_to_array(p, ','), i
           FROM unnest($1::uuid[], $2::text[], $3::text[], $5::text[], $6::text[]) AS u(r, m, why, p, i)""",
        [rid for _, rid in opened],
        [r.meter_number for r, _ in opened],
        [r.reason for r, _ in opened],
        deadline,
        [",".join(r.providers) for r, _ in opened],
        [r.institution_id for r, _ in opened],
    )
    out.write_later(
        """INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at)
           SELECT l, r, m, p, now() FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS u(l, r, m, p)""",
        [lk for lk, _, _, _ in lookups],
        [rid for _, _, rid, _ in lookups],
        [r.meter_number for _, r, _, _ in lookups],
        [p for _, _, _, p in lookups],
    )
    broadcast = [(r.meter_number, pid) for _, r, _, pid in lookups if r.reason != "routine"]
    # "Awaiting confirmation" compares the last response with the last broadcast, so routine lookups don't count.
    if broadcast:
        out.write_later(
            """INSERT INTO meter_support (meter_number, provider_id, last_lookup_sent_at)
               SELECT m, p, now() FROM unnest($1::text[], $2::text[]) AS u(m, p)
               ON CONFLICT (meter_number, provider_id)
               DO UPDATE SET last_lookup_sent_at = excluded.last_lookup_sent_at""",
            [m for m, _ in broadcast],
            [p for _, p in broadcast],
        )
    for lookup_id, r, round_id, pid in lookups:
        out.emit(
            "lookup_requests",
            LookupRequested.new_encoded(
                LookupRequestedData(
                    lookup_id=lookup_id,
                    round_id=round_id,
                    meter_number=r.meter_number,
                    provider_id=pid,
                    reason=r.reason,
                    institution_id=r.institution_id,
                    deadline=deadline,
                ),
                source=SOURCE,
                correlationid=r.correlation_id,
                causationid=r.causation_id,
            ),
            provider_id=pid,
        )
    return opened


async def decide_waiting(
    conn: Db,
    out: UnitOfWork,
    round_ids: list[uuid.UUID],
    expired: bool,
    causation_id: str | None = None,
    budget_seconds: float | None = None,
) -> int:
    """Decides the attempts waiting on these rounds that waiting can no longer change, or that waited the decision
    budget and have a Supported provider (all of them when `expired`); closes rounds whose providers all answered,
    or that expired. Returns attempts decided."""
    if not round_ids:
        return 0
    # Bounds that let PostgreSQL read only the partitions these rounds' lookups and attempts can be in: both are
    # written after their round was opened, and within the live window (its end: kernel/live_window.py).
    since = min(id_time(r) for r in round_ids) - ID_MARGIN
    # The open rounds, each with the attempts waiting on it (none: one row, its attempt columns null), in one round
    # trip; rounds in meter order, attempts in the order received, as the callers lock and decide. Each round, and
    # its lookups, read by its key (LATERAL, OFFSET 0: subqueries the planner cannot flatten into joins): as joins,
    # the generic plan a worker makes on a new install's empty tables read every open round and every lookup of
    # the window instead (tests/test_plans_as_tables_grow.py). A round without lookups is left out, as before.
    rows = await conn.fetch(
        """WITH open AS (
               SELECT r.round_id, r.meter_number, r.reason, r.opened_at, r.providers_asked, u.unanswered
               FROM unnest($1::uuid[]) AS k(id)
               CROSS JOIN LATERAL (SELECT * FROM lookup_rounds
                                   WHERE round_id = k.id AND round_id >= $2 AND round_id < $3 OFFSET 0) r
               CROSS JOIN LATERAL (
                   SELECT coalesce(array_agg(l.provider_id) FILTER (WHERE l.responded_at IS NULL), '{}') AS unanswered
                   FROM lookups l WHERE l.round_id = r.round_id AND l.lookup_id >= $2 AND l.lookup_id < $3
                   HAVING count(*) > 0) u
               WHERE r.closed_at IS NULL)
           SELECT o.*, a.attempt_id, a.institution_id, a.received_at,
                  coalesce($4::float8 IS NOT NULL AND a.joined_at <= now() - make_interval(secs => $4), false)
                      AS over_budget
           FROM open o LEFT JOIN purchase_attempts a
                ON a.round_id = o.round_id AND a.round_id = ANY($1::uuid[]) AND a.decided_at IS NULL
               AND a.recorded_at >= $5 AND a.recorded_at < $6""",
        round_ids,
        id_floor(since),
        live_until_id(),
        budget_seconds,
        since,
        live_until(),
    )
    if not rows:
        return 0
    rounds = sorted({r["round_id"]: r for r in rows}.values(), key=lambda r: r["meter_number"])
    waiting = sorted(
        (r for r in rows if r["attempt_id"] is not None), key=lambda r: (r["received_at"], r["attempt_id"])
    )
    ctx = await load_context(
        conn, sorted({r["meter_number"] for r in rounds}), sorted({w["institution_id"] for w in waiting})
    )
    unanswered = {r["round_id"]: set(r["unanswered"]) for r in rounds}
    waits = [WaitingAttempt(w["attempt_id"], w["meter_number"], w["institution_id"], w["round_id"]) for w in waiting]
    over_budget = frozenset(w["attempt_id"] for w in waiting if w["over_budget"])
    decided, closing_ids = settle(unanswered, waits, ctx, expired, causation_id, over_budget)
    closing = [r for r in rounds if r["round_id"] in set(closing_ids)]
    await record_decisions(conn, out, decided, since=since)
    if closing:  # no round trip for nothing: most calls close none
        await conn.execute(
            "UPDATE lookup_rounds SET closed_at = now() WHERE round_id = ANY($1::uuid[])",
            [r["round_id"] for r in closing],
        )
    if expired:
        for r in closing:
            out.emit(
                "meter_events",
                RoundExpired.new(
                    RoundExpiredData(
                        round_id=r["round_id"],
                        meter_number=r["meter_number"],
                        reason=r["reason"],
                        providers_asked=list(r["providers_asked"]),
                        unanswered=sorted(unanswered[r["round_id"]]),
                        opened_at=r["opened_at"],
                    ),
                    source="ppu/sweeper",
                    correlationid=str(r["round_id"]),
                ),
            )
    return len(decided)
