"""Decisions: stored once each, published, and the meters nobody can serve blocked."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from datetime import datetime

from domain.attempts import Decided
from domain.routing import Decision
from kernel.dbconn import Db
from kernel.live_window import live_since, live_until
from messaging import metrics
from schemas.envelope import D, Encoded, Envelope
from schemas.meter_events import MeterBlocked, MeterBlockedData
from schemas.purchase import (
    PurchaseBlocked,
    PurchaseBlockedData,
    PurchaseRouted,
    PurchaseRoutedData,
    SkippedProvider,
)
from workers.unit_of_work import UnitOfWork

SOURCE = "ppu/lookup"


# A decision's columns on its attempt's row (migration 0019), from its provider (NULL: blocked), reason (NULL: not
# decided yet) and skipped list (JSON text): the arrays of `decision_columns`, named in SQL as `u.p`, `u.r`, `u.s`.
DECISION_COLUMNS = "outcome, provider_id, reason, skipped"
DECISION_VALUES = (
    "CASE WHEN u.r IS NULL THEN NULL WHEN u.p IS NULL THEN 'blocked' ELSE 'routed' END, u.p, u.r, u.s::jsonb"
)


def decision_columns(decisions: Sequence[Decision | None]) -> list[list[str | None]]:
    """Provider, reason and skipped list of each decision (None: an attempt not decided)."""
    return [
        [d.provider_id if d else None for d in decisions],
        [d.reason if d else None for d in decisions],
        [_skipped_json(tuple(d.skipped)) if d else None for d in decisions],
    ]


async def record_decisions(conn: Db, out: UnitOfWork, decided: list[Decided], since: datetime | None = None) -> None:
    """Claims the waiting attempts (recorded `since`; the live window when None), stores each decision on its
    attempt and publishes it (`publish_decisions`); attempts already decided elsewhere are left out."""
    if not decided:
        return
    # Claimed and stored in one statement: a waiting attempt gets one decision however many transactions try (the
    # row lock makes a second wait, then see it decided, so it claims and stores nothing).
    claimed = {
        r["attempt_id"]: r["waited"]
        for r in await conn.fetch(
            f"""UPDATE purchase_attempts a SET decided_at = now(), ({DECISION_COLUMNS}) = ({DECISION_VALUES})
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(a, p, r, s)
                WHERE a.attempt_id = u.a AND a.decided_at IS NULL AND a.recorded_at >= $5 AND a.recorded_at < $6
                RETURNING a.attempt_id, greatest(extract(epoch FROM now() - a.received_at), 0)::float8 AS waited""",
            [d.attempt_id for d in decided],
            *decision_columns([d.decision for d in decided]),
            since or live_since(),
            live_until(),
        )
    }
    decided = [d for d in decided if d.attempt_id in claimed]
    if decided:
        await publish_decisions(conn, out, decided, claimed)


async def publish_decisions(conn: Db, out: UnitOfWork, decided: list[Decided], waited: dict[uuid.UUID, float]) -> None:
    """After the decisions are stored: publishes each, and blocks the meters nobody can serve. `waited`: seconds
    from each attempt's receipt to its decision."""
    if not decided:
        return
    for d in decided:
        outcome = "blocked" if d.decision.provider_id is None else "routed"
        metrics.DECISION_SECONDS.labels(outcome).observe(waited[d.attempt_id])
    blocked_meters = sorted({d.meter_number for d in decided if d.decision.provider_id is None})
    newly_blocked = (
        {
            r["meter_number"]
            for r in await conn.fetch(
                """UPDATE meters SET blocked = true, updated_at = now()
           WHERE meter_number = ANY($1::text[]) AND NOT blocked RETURNING meter_number""",
                blocked_meters,
            )
        }
        if blocked_meters
        else set()
    )
    for d in decided:
        skipped = list(_skipped_models(tuple(d.decision.skipped)))
        a, m, why = d.attempt_id, d.meter_number, d.decision.reason
        if d.decision.provider_id is None:
            blocked = PurchaseBlockedData(attempt_id=a, meter_number=m, reason=why, skipped=skipped)
            out.emit("routing_decisions", _encoded(PurchaseBlocked, blocked, d))
            if m in newly_blocked:
                newly_blocked.discard(m)
                out.emit(
                    "meter_events",
                    _encoded(MeterBlocked, MeterBlockedData(meter_number=m, reason=why, attempt_id=a), d),
                )
        else:
            p = d.decision.provider_id
            routed = PurchaseRoutedData(attempt_id=a, meter_number=m, provider_id=p, reason=why, skipped=skipped)
            out.emit("routing_decisions", _encoded(PurchaseRouted, routed, d))


def _encoded(kind: type[Envelope[D]], data: D, d: Decided) -> Encoded:
    """An event about decision `d`: the attempt is its correlation, the message that caused the decision its cause."""
    return kind.new_encoded(data, source=SOURCE, correlationid=str(d.attempt_id), causationid=d.causation_id)


# Both by the skipped list's value: a handful of lists repeat across thousands of decisions, and building each
# anew (stdlib json, a validated model per provider) was a tenth of the lookup worker's CPU. The models are frozen.
@functools.lru_cache(maxsize=4096)
def _skipped_json(skipped: tuple[tuple[str, str], ...]) -> str:
    return json.dumps([{"provider_id": p, "reason": r} for p, r in skipped])


@functools.lru_cache(maxsize=4096)
def _skipped_models(skipped: tuple[tuple[str, str], ...]) -> tuple[SkippedProvider, ...]:
    return tuple(SkippedProvider(provider_id=p, reason=r) for p, r in skipped)
