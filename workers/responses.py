"""Response consumer: provider answers in; the rules of domain/answers.py applied: support recorded, resets and
rebroadcast marks cleared, meters unblocked and assigned, waiting attempts decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from domain import answers as rules
from domain.answers import Change, Recorded, SentLookup
from kernel.dbconn import Db
from kernel.live_window import live_since_id, live_until_id
from messaging.inbound import Inbound
from schemas.lookup import LookupResponded
from schemas.meter_events import MeterUnblocked, MeterUnblockedData, SupportChanged, SupportChangedData
from workers.meter_locks import read_meters
from workers.rounds import decide_waiting
from workers.unit_of_work import UnitOfWork

SOURCE = "ppu/responses"
log = structlog.get_logger()
Matched = tuple[Inbound[LookupResponded], SentLookup]


async def handle_lookup_responses(
    batch: list[Inbound[LookupResponded]],
    work: UnitOfWork,
    max_skew_seconds: float = 30.0,
    budget_seconds: float | None = None,
) -> None:
    conn, out = work.conn, work
    locked = await read_meters(conn, (m.event.data.meter_number for m in batch))
    # The lookups answered, and the database's clock (answers dated past it are clamped) in the same round trip:
    # one row with the clock alone when none of them is known. Each lookup's round is read by its key (LATERAL,
    # OFFSET 0: a subquery the planner cannot flatten into a join): left a join, the generic plan a worker makes on
    # a new install's empty tables read every round of the window instead (tests/test_plans_as_tables_grow.py).
    rows = await conn.fetch(
        """SELECT c.now, x.* FROM (SELECT now() AS now) c
           LEFT JOIN LATERAL (
               SELECT l.lookup_id, l.provider_id, l.meter_number, l.sent_at, l.round_id, r.reason, r.opened_at,
                      r.institution_id
               FROM lookups l
               CROSS JOIN LATERAL (SELECT reason, opened_at, institution_id FROM lookup_rounds
                                   WHERE round_id = l.round_id AND round_id >= $2 AND round_id < $3 OFFSET 0) r
               WHERE l.lookup_id = ANY($1::uuid[]) AND l.lookup_id >= $2 AND l.lookup_id < $3) x ON true""",
        [m.event.data.lookup_id for m in batch],
        live_since_id(),  # an answer a week late is to a lookup we no longer hold open (kernel/live_window.py)
        live_until_id(),  # and the window's end: the partitions made ahead are not planned
    )
    now: datetime = rows[0]["now"]
    # The columns after the clock are SentLookup's fields in order: built by position, not through a dict per row
    # (a twentieth of the consumer's CPU at a backlog).
    sent = {r["lookup_id"]: SentLookup(*tuple(r)[1:]) for r in rows if r["lookup_id"] is not None}
    batch = [_bounded(m, now, max_skew_seconds) for m in batch]
    valid: list[Matched] = []
    for i, m in enumerate(batch):
        lookup = sent.get(m.event.data.lookup_id)
        why = rules.mismatch(m.event.data, lookup)
        if why is not None:
            out.reject(i, why)
        else:
            assert lookup is not None
            valid.append((m, lookup))
    if not valid:
        return
    # The answers on their lookups, and a DOWN provider that answers is back (domain/health.py; routing may choose it
    # again): one round trip, the two tables having nothing to do with each other.
    await conn.execute(
        """WITH answered AS (
               UPDATE lookups l SET responded_at = u.t, status = u.s
               FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, t, s)
               WHERE l.lookup_id = u.id AND l.lookup_id = ANY($1::uuid[]) -- the partitions by id, read while planning
                 AND (l.responded_at IS NULL OR l.responded_at < u.t))
           UPDATE providers SET health = 'DEGRADED', health_changed_at = now()
           WHERE provider_id = ANY($4::text[]) AND health = 'DOWN'""",
        [m.event.data.lookup_id for m, _ in valid],
        [m.event.data.responded_at for m, _ in valid],
        [m.event.data.status for m, _ in valid],
        sorted({m.event.data.provider_id for m, _ in valid}),
    )
    changes = await _record_support(conn, out, valid)
    await _clear_resets(conn, valid)
    await _clear_rebroadcast_marks(conn, valid)
    await _unblock(conn, out, rules.to_unblock(changes, {m for m, r in locked.items() if r["blocked"]}))
    unassigned = {m for m, r in locked.items() if r["utility_id"] is None}
    await _assign_utilities(conn, rules.utilities_named([m.event.data for m, _ in valid], unassigned))
    rounds = sorted({lookup.round_id for _, lookup in valid}, key=str)
    causation = str(valid[-1][0].event.id)
    await decide_waiting(conn, out, rounds, expired=False, causation_id=causation, budget_seconds=budget_seconds)


def _bounded(m: Inbound[LookupResponded], now: datetime, max_skew_seconds: float) -> Inbound[LookupResponded]:
    d = m.event.data
    at = rules.clamped(d.responded_at, now, max_skew_seconds)
    if at == d.responded_at:
        return m
    log.warning("answer dated in the future; clamped", provider=d.provider_id, responded_at=d.responded_at.isoformat())
    event = m.event.model_copy(update={"data": d.model_copy(update={"responded_at": at})})
    return Inbound(event, m.topic, m.partition, m.offset)


async def _record_support(conn: Db, out: UnitOfWork, valid: list[Matched]) -> list[Change]:
    """Applies the newest answer per (meter, provider) unless it is stale; returns the changes."""
    newest = rules.newest([(m, m.event.data, lookup) for m, lookup in valid])
    current = {
        (r["meter_number"], r["provider_id"]): Recorded(r["status"], r["answered_sent_at"])
        for r in await conn.fetch(
            """SELECT meter_number, provider_id, status, answered_sent_at FROM meter_support
           WHERE (meter_number, provider_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
           ORDER BY meter_number, provider_id FOR UPDATE""",
            [k[0] for k in newest],
            [k[1] for k in newest],
        )
    }
    apply: list[tuple[str, str, str, datetime, dict[str, Any] | None, datetime]] = []
    changes: list[Change] = []
    for key, (m, lookup) in newest.items():
        d = m.event.data
        if rules.is_stale(lookup, current.get(key)):
            continue
        apply.append((key[0], key[1], d.status, d.responded_at, _details(m.event), lookup.sent_at))
        c = rules.change(key, d.status, current.get(key))
        if c is None:
            continue
        changes.append(c)
        out.emit(
            "meter_events",
            SupportChanged.new_encoded(
                SupportChangedData(
                    meter_number=c.meter_number,
                    provider_id=c.provider_id,
                    previous_status=c.previous,
                    status=c.status,
                    last_response_at=d.responded_at,
                ),
                source=SOURCE,
                correlationid=m.event.correlationid,
                causationid=str(m.event.id),
            ),
        )
    await conn.execute(
        """INSERT INTO meter_support (meter_number, provider_id, status, last_response_at, details, answered_sent_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::timestamptz[])
           ON CONFLICT (meter_number, provider_id) DO UPDATE
           SET status = excluded.status, last_response_at = excluded.last_response_at, details = excluded.details,
               answered_sent_at = excluded.answered_sent_at""",
        *[[a[i] for a in apply] for i in range(6)],
    )
    return changes


def _details(event: LookupResponded) -> dict[str, Any] | None:
    """What the provider told about the meter (utility, customer, purchase limits), for the meter page."""
    d = event.data
    found = {
        k: v.model_dump(exclude_none=True)
        for k, v in (
            ("utility", d.utility),
            ("customer", d.customer),
            ("min_amount", d.min_amount),
            ("max_amount", d.max_amount),
        )
        if v is not None
    }
    return found or None


async def _clear_resets(conn: Db, valid: list[Matched]) -> None:
    """An answer to a lookup sent after an institution's reset ends that reset: the institution sees it."""
    await conn.execute(
        """DELETE FROM support_resets s USING unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(m, p, sent)
           WHERE s.meter_number = u.m AND s.provider_id = u.p AND u.sent >= s.since""",
        [lookup.meter_number for _, lookup in valid],
        [lookup.provider_id for _, lookup in valid],
        [lookup.sent_at for _, lookup in valid],
    )


async def _clear_rebroadcast_marks(conn: Db, valid: list[Matched]) -> None:
    """The first answer to a rebroadcast round that an institution's attempt opened after the institution marked
    the meter clears that institution's mark."""
    rounds = [lookup for _, lookup in valid if lookup.reason == "rebroadcast" and lookup.institution_id is not None]
    if not rounds:  # most batches: answers to routine lookups; no round trip for nothing
        return
    await conn.execute(
        """DELETE FROM rebroadcast_marks k USING unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(m, i, opened)
           WHERE k.meter_number = u.m AND k.institution_id = u.i AND u.opened >= k.marked_at""",
        [r.meter_number for r in rounds],
        [r.institution_id for r in rounds],
        [r.opened_at for r in rounds],
    )


async def _unblock(conn: Db, out: UnitOfWork, supporter: dict[str, str]) -> None:
    if not supporter:
        return
    await conn.execute(
        "UPDATE meters SET blocked = false, updated_at = now() WHERE meter_number = ANY($1::text[])", sorted(supporter)
    )
    for meter in sorted(supporter):
        out.emit(
            "meter_events",
            MeterUnblocked.new_encoded(
                MeterUnblockedData(meter_number=meter, provider_id=supporter[meter]),
                source=SOURCE,
                correlationid=meter,
            ),
        )


async def _assign_utilities(conn: Db, named: dict[str, str]) -> None:
    if not named:
        return
    names = sorted(set(named.values()))
    await conn.execute(
        """INSERT INTO utilities (utility_id, name) SELECT * FROM unnest($1::text[], $2::text[])
                          ON CONFLICT DO NOTHING""",
        [rules.utility_id(n) for n in names],
        names,
    )
    await conn.execute(
        """UPDATE meters m SET utility_id = u.utility_id, updated_at = now()
           FROM unnest($1::text[], $2::text[]) AS n(meter, name) JOIN utilities u ON u.name = n.name
           WHERE m.meter_number = n.meter AND m.utility_id IS NULL""",
        list(named),
        list(named.values()),
    )
