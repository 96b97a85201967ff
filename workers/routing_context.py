"""Everything routing needs for a batch of meters, read in a few set-based queries, and the decisions' effects."""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from domain.attempts import Decided
from domain.meters import Meter, RoutingContext
from kernel.dbconn import Db
from kernel.live_window import live_since, live_since_id
from messaging import metrics
from schemas.meter_events import MeterBlocked, MeterBlockedData
from schemas.purchase import (
    PurchaseBlocked,
    PurchaseBlockedData,
    PurchaseRouted,
    PurchaseRoutedData,
    SkippedProvider,
)
from workers.meter_locks import read_meters
from workers.reference_data import CACHE, KINDS, PARTS
from workers.unit_of_work import UnitOfWork

SOURCE = "ppu/lookup"


# The batch's facts, one row per fact (kind, meter or utility, institution, provider, status or health or preference
# kind, rank or enabled, weight), then the reference data's version and, when the cached copy is stale, the reference
# tables whole (workers/reference_data.py).
FACTS = (
    """
SELECT 's', meter_number, NULL, provider_id, status, NULL::int, NULL::int FROM meter_support
 WHERE meter_number = ANY($1::text[])
UNION ALL SELECT 'm', meter_number, institution_id, NULL, NULL, NULL, NULL FROM rebroadcast_marks
 WHERE meter_number = ANY($1::text[])
UNION ALL SELECT 'r', meter_number, institution_id, provider_id, NULL, NULL, NULL FROM support_resets
 WHERE meter_number = ANY($1::text[]) AND institution_id = ANY($2::text[])
UNION ALL SELECT 'p', meter_number, institution_id, provider_id, NULL, NULL, NULL FROM meter_preferences
 WHERE meter_number = ANY($1::text[]) AND institution_id = ANY($2::text[])"""
    + PARTS
)
# The lookup worker's batch also reads, in the same round trip, its attempt ids seen before (within the live window:
# $4, since $5) and the meters' open rounds (ids since $6). Worker sessions plan without parallel workers
# (workers/process.py): as parallel scans these two reads once cost 80 ms instead of 16 over 10 million attempts.
LOOKUP_FACTS = (
    FACTS
    + """
UNION ALL SELECT 'a', meter_number, institution_id, attempt_id::text, NULL, NULL, NULL FROM purchase_attempts
 WHERE attempt_id = ANY($4::uuid[]) AND recorded_at >= $5
UNION ALL SELECT 'o', meter_number, NULL, round_id::text, NULL, NULL, NULL FROM lookup_rounds
 WHERE meter_number = ANY($1::text[]) AND closed_at IS NULL AND round_id >= $6"""
)


@dataclass
class LookupFacts:
    """What the lookup worker reads beside the routing context: its attempts seen before and the open rounds."""

    seen: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)  # attempt → (meter, institution)
    open_rounds: dict[str, uuid.UUID] = field(default_factory=dict)  # meter → its open round


async def load_context(
    conn: Db, meter_numbers: list[str], institutions: list[str], lock: bool = False
) -> RoutingContext:
    """Reads the meters (locked FOR UPDATE when `lock`, in a fixed order so that batches cannot deadlock)."""
    rows = await read_meters(conn, meter_numbers, lock)
    facts = await conn.fetch(FACTS, meter_numbers, institutions, CACHE.version())
    return _context(rows, facts, institutions)


async def load_lookup_context(
    conn: Db, meter_numbers: list[str], institutions: list[str], attempt_ids: list[uuid.UUID]
) -> tuple[RoutingContext, LookupFacts]:
    """The meters locked (read_meters), then their facts with the attempts seen and open rounds, in one statement."""
    rows = await read_meters(conn, meter_numbers, True)
    facts = await conn.fetch(
        LOOKUP_FACTS, meter_numbers, institutions, CACHE.version(), attempt_ids, live_since(), live_since_id()
    )
    found = LookupFacts()
    for kind, key, inst_id, ident, *_ in facts:
        if kind == "a":
            assert key is not None and inst_id is not None and ident is not None
            found.seen[uuid.UUID(ident)] = (key, inst_id)
        elif kind == "o":
            assert key is not None and ident is not None
            found.open_rounds[key] = uuid.UUID(ident)
    return _context(rows, facts, institutions), found


def _context(rows: dict[str, asyncpg.Record], facts: list[asyncpg.Record], institutions: list[str]) -> RoutingContext:
    meters = {n: Meter(n, r["utility_id"], r["blocked"]) for n, r in rows.items()}
    version = ""
    for kind, key, inst_id, provider, text, _, _ in facts:
        if kind == "s":
            meters[key].support[provider] = text
        elif kind == "m":
            meters[key].marked_by.add(inst_id)
        elif kind == "r":
            meters[key].resets.setdefault(inst_id, set()).add(provider)
        elif kind == "p":
            meters[key].preferred[inst_id] = provider
        elif kind == "v":
            version = key
    ref = CACHE.settle(version, [tuple(f) for f in facts if f[0] in KINDS])
    # Only the batch's institutions: what a context holds of another institution is never routing's to see.
    inst = {i: ref.institution_providers[i] for i in institutions if i in ref.institution_providers}
    prefs = {(i, u): p for i in institutions for u, p in ref.preferences.get(i, {}).items()}
    return RoutingContext(meters, ref.providers, inst, prefs)


async def record_decisions(
    conn: Db,
    out: UnitOfWork,
    decided: list[Decided],
    inserted: dict[uuid.UUID, float] | None = None,
    since: datetime | None = None,
) -> None:
    """Stores each decision once, publishes it, and blocks meters nobody can serve. `inserted`: the attempts
    were written decided already, in this transaction (attempt id → seconds since received); otherwise the waiting
    attempts (recorded `since`; the live window when None) are claimed here, and those already decided elsewhere
    are left out."""
    if not decided:
        return
    if inserted is None:
        # Claimed first: a waiting attempt gets one decision however many transactions try (the row lock makes a
        # second wait, then see it decided). Partitioned history has no unique attempt id to lean on (0013).
        inserted = {
            r["attempt_id"]: r["waited"]
            for r in await conn.fetch(
                """UPDATE purchase_attempts SET decided_at = now()
                   WHERE attempt_id = ANY($1::uuid[]) AND decided_at IS NULL AND recorded_at >= $2
                   RETURNING attempt_id, greatest(extract(epoch FROM now() - received_at), 0)::float8 AS waited""",
                [d.attempt_id for d in decided],
                since or live_since(),
            )
        }
    decided = [d for d in decided if d.attempt_id in inserted]
    if not decided:
        return
    await conn.execute(
        """INSERT INTO routing_decisions (attempt_id, meter_number, outcome, provider_id, reason, skipped, decided_at)
           SELECT a, m, CASE WHEN p IS NULL THEN 'blocked' ELSE 'routed' END, p, r, s::jsonb, now()
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(a, m, p, r, s)""",
        [d.attempt_id for d in decided],
        [d.meter_number for d in decided],
        [d.decision.provider_id for d in decided],
        [d.decision.reason for d in decided],
        [_skipped_json(tuple(d.decision.skipped)) for d in decided],
    )
    for d in decided:
        outcome = "blocked" if d.decision.provider_id is None else "routed"
        metrics.DECISION_SECONDS.labels(outcome).observe(inserted[d.attempt_id])
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
        corr = str(d.attempt_id)
        if d.decision.provider_id is None:
            out.emit(
                "routing_decisions",
                PurchaseBlocked.new(
                    PurchaseBlockedData(
                        attempt_id=d.attempt_id,
                        meter_number=d.meter_number,
                        reason=d.decision.reason,
                        skipped=skipped,
                    ),
                    source=SOURCE,
                    correlationid=corr,
                    causationid=d.causation_id,
                ),
            )
            if d.meter_number in newly_blocked:
                newly_blocked.discard(d.meter_number)
                out.emit(
                    "meter_events",
                    MeterBlocked.new(
                        MeterBlockedData(
                            meter_number=d.meter_number, reason=d.decision.reason, attempt_id=d.attempt_id
                        ),
                        source=SOURCE,
                        correlationid=corr,
                        causationid=d.causation_id,
                    ),
                )
        else:
            out.emit(
                "routing_decisions",
                PurchaseRouted.new(
                    PurchaseRoutedData(
                        attempt_id=d.attempt_id,
                        meter_number=d.meter_number,
                        provider_id=d.decision.provider_id,
                        reason=d.decision.reason,
                        skipped=skipped,
                    ),
                    source=SOURCE,
                    correlationid=corr,
                    causationid=d.causation_id,
                ),
            )


# Both by the skipped list's value: a handful of lists repeat across thousands of decisions, and building each
# anew (stdlib json, a validated model per provider) was a tenth of the lookup worker's CPU. The models are frozen.
@functools.lru_cache(maxsize=4096)
def _skipped_json(skipped: tuple[tuple[str, str], ...]) -> str:
    return json.dumps([{"provider_id": p, "reason": r} for p, r in skipped])


@functools.lru_cache(maxsize=4096)
def _skipped_models(skipped: tuple[tuple[str, str], ...]) -> tuple[SkippedProvider, ...]:
    return tuple(SkippedProvider(provider_id=p, reason=r) for p, r in skipped)
