"""Response consumer: provider lookup responses in; support recorded, flags cleared, meters unblocked/assigned.

A response must match a lookup we sent to that provider for that meter, or it is dead-lettered. A response
never overwrites a newer one for the same (meter, provider). What it says is shared knowledge; an institution
that reset the provider to Unconfirmed (Confirm support) keeps seeing Unconfirmed until the provider answers a
lookup sent after that reset.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import structlog

from kernel.dbconn import Db
from schemas.lookup import LookupResponded
from schemas.meter_events import MeterUnblocked, MeterUnblockedData, SupportChanged, SupportChangedData
from workers.inbound import Inbound
from workers.outbox import Outbox
from workers.rounds import decide_waiting

SOURCE = "ppu/responses"
log = structlog.get_logger()


async def handle_lookup_responses(
    batch: list[Inbound[LookupResponded]], conn: Db, out: Outbox, max_skew_seconds: float = 30.0
) -> None:
    now: datetime = await conn.fetchval("SELECT now()")
    batch = [_bounded(m, now, max_skew_seconds) for m in batch]
    meters = sorted({m.event.data.meter_number for m in batch})
    locked = {
        r["meter_number"]: r
        for r in await conn.fetch(
            """SELECT meter_number, utility_id, blocked FROM meters
           WHERE meter_number = ANY($1::text[]) ORDER BY meter_number FOR UPDATE""",
            meters,
        )
    }
    lookups = {
        r["lookup_id"]: r
        for r in await conn.fetch(
            """SELECT l.lookup_id, l.provider_id, l.meter_number, l.sent_at, l.round_id, r.reason, r.opened_at,
                  r.institution_id
           FROM lookups l JOIN lookup_rounds r USING (round_id) WHERE l.lookup_id = ANY($1::uuid[])""",
            [m.event.data.lookup_id for m in batch],
        )
    }
    valid: list[tuple[Inbound[LookupResponded], Any]] = []
    for i, m in enumerate(batch):
        d = m.event.data
        row = lookups.get(d.lookup_id)
        if row is None:
            out.reject(i, f"unknown lookup id {d.lookup_id}")
        elif (row["provider_id"], row["meter_number"]) != (d.provider_id, d.meter_number):
            out.reject(
                i,
                f"lookup {d.lookup_id} was sent to {row['provider_id']} for meter {row['meter_number']}, "
                f"not to {d.provider_id} for {d.meter_number}",
            )
        else:
            valid.append((m, row))
    if not valid:
        return
    await conn.execute(
        """UPDATE lookups l SET responded_at = u.t, status = u.s
           FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, t, s)
           WHERE l.lookup_id = u.id AND (l.responded_at IS NULL OR l.responded_at < u.t)""",
        [m.event.data.lookup_id for m, _ in valid],
        [m.event.data.responded_at for m, _ in valid],
        [m.event.data.status for m, _ in valid],
    )
    # A DOWN provider that answers is back (see providers/health.py); routing may choose it again.
    await conn.execute(
        """UPDATE providers SET health = 'DEGRADED', health_changed_at = now()
           WHERE provider_id = ANY($1::text[]) AND health = 'DOWN'""",
        sorted({m.event.data.provider_id for m, _ in valid}),
    )
    changed = await _record_support(conn, out, valid)
    await _clear_resets(conn, valid)
    await _clear_rebroadcast_marks(conn, valid)
    await _unblock(conn, out, locked, changed)
    await _assign_utilities(conn, locked, valid)
    rounds = sorted({row["round_id"] for _, row in valid}, key=str)
    await decide_waiting(conn, out, rounds, expired=False, causation_id=str(valid[-1][0].event.id))


def _bounded(m: Inbound[LookupResponded], now: datetime, max_skew_seconds: float) -> Inbound[LookupResponded]:
    """A provider's `responded_at` is information from its clock: dated further ahead than the allowed skew, it
    is clamped to the time we received it (the database's). It never orders answers (see _record_support)."""
    d = m.event.data
    if d.responded_at <= now + timedelta(seconds=max_skew_seconds):
        return m
    log.warning("answer dated in the future; clamped", provider=d.provider_id, responded_at=d.responded_at.isoformat())
    event = m.event.model_copy(update={"data": d.model_copy(update={"responded_at": now})})
    return Inbound(event, m.topic, m.partition, m.offset)


async def _record_support(
    conn: Db, out: Outbox, valid: list[tuple[Inbound[LookupResponded], Any]]
) -> dict[tuple[str, str], str]:
    """Applies the newest answer per (meter, provider) unless a newer one is recorded; returns new statuses.

    Newest means: to the lookup sent last (the database's clock), then, among answers to the same lookup, the
    one received last. The provider's clock orders nothing: a late answer to an older round never overwrites the
    answer to a re-check, and an answer dated in the future cannot freeze a status.
    """
    newest: dict[tuple[str, str], tuple[Inbound[LookupResponded], Any]] = {}
    for m, row in valid:  # in the order received: a later one for the same lookup replaces an earlier one
        key = (m.event.data.meter_number, m.event.data.provider_id)
        if key not in newest or newest[key][1]["sent_at"] <= row["sent_at"]:
            newest[key] = (m, row)
    current = {
        (r["meter_number"], r["provider_id"]): r
        for r in await conn.fetch(
            """SELECT meter_number, provider_id, status, last_response_at, answered_sent_at FROM meter_support
           WHERE (meter_number, provider_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
           ORDER BY meter_number, provider_id FOR UPDATE""",
            [k[0] for k in newest],
            [k[1] for k in newest],
        )
    }
    apply: list[tuple[str, str, str, datetime, dict[str, Any] | None, datetime]] = []
    changed: dict[tuple[str, str], str] = {}
    for key, (m, row) in newest.items():
        d, cur = m.event.data, current.get(key)
        if cur is not None and cur["answered_sent_at"] is not None and cur["answered_sent_at"] > row["sent_at"]:
            continue  # stale: the answer to a later lookup is recorded
        apply.append((key[0], key[1], d.status, d.responded_at, _details(m.event), row["sent_at"]))
        previous = cur["status"] if cur is not None else "unconfirmed"
        if previous != d.status:
            changed[key] = d.status
            out.emit(
                "meter_events",
                SupportChanged.new(
                    SupportChangedData(
                        meter_number=key[0],
                        provider_id=key[1],
                        previous_status=previous,
                        status=d.status,
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
    return changed


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


async def _clear_resets(conn: Db, valid: list[tuple[Inbound[LookupResponded], Any]]) -> None:
    """An answer to a lookup sent after an institution's reset ends that reset: the institution sees it."""
    await conn.execute(
        """DELETE FROM support_resets s USING unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(m, p, sent)
           WHERE s.meter_number = u.m AND s.provider_id = u.p AND u.sent >= s.since""",
        [row["meter_number"] for _, row in valid],
        [row["provider_id"] for _, row in valid],
        [row["sent_at"] for _, row in valid],
    )


async def _clear_rebroadcast_marks(conn: Db, valid: list[tuple[Inbound[LookupResponded], Any]]) -> None:
    """The first answer to a rebroadcast round that an institution's attempt opened after the institution marked
    the meter clears that institution's mark."""
    rounds = [row for _, row in valid if row["reason"] == "rebroadcast" and row["institution_id"] is not None]
    await conn.execute(
        """DELETE FROM rebroadcast_marks k USING unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(m, i, opened)
           WHERE k.meter_number = u.m AND k.institution_id = u.i AND u.opened >= k.marked_at""",
        [r["meter_number"] for r in rounds],
        [r["institution_id"] for r in rounds],
        [r["opened_at"] for r in rounds],
    )


async def _unblock(conn: Db, out: Outbox, locked: dict[str, Any], changed: dict[tuple[str, str], str]) -> None:
    supporter = {meter: pid for (meter, pid), status in sorted(changed.items()) if status == "supported"}
    unblocked = [
        r["meter_number"]
        for r in await conn.fetch(
            """UPDATE meters SET blocked = false, updated_at = now()
           WHERE meter_number = ANY($1::text[]) AND blocked RETURNING meter_number""",
            sorted(supporter),
        )
    ]
    for meter in sorted(unblocked):
        out.emit(
            "meter_events",
            MeterUnblocked.new(
                MeterUnblockedData(meter_number=meter, provider_id=supporter[meter]),
                source=SOURCE,
                correlationid=meter,
            ),
        )


def _utility_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "utility"


async def _assign_utilities(
    conn: Db, locked: dict[str, Any], valid: list[tuple[Inbound[LookupResponded], Any]]
) -> None:
    """A provider that names the utility of an Unassigned meter assigns the meter to it."""
    named = {
        m.event.data.meter_number: m.event.data.utility.name
        for m, _ in valid
        if m.event.data.utility is not None and locked[m.event.data.meter_number]["utility_id"] is None
    }
    if not named:
        return
    names = sorted(set(named.values()))
    await conn.execute(
        """INSERT INTO utilities (utility_id, name) SELECT * FROM unnest($1::text[], $2::text[])
                          ON CONFLICT DO NOTHING""",
        [_utility_id(n) for n in names],
        names,
    )
    await conn.execute(
        """UPDATE meters m SET utility_id = u.utility_id, updated_at = now()
           FROM unnest($1::text[], $2::text[]) AS n(meter, name) JOIN utilities u ON u.name = n.name
           WHERE m.meter_number = n.meter AND m.utility_id IS NULL""",
        list(named),
        list(named.values()),
    )
