"""Everything routing needs for a batch of meters, read in few set-based statements (the locks first)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg

from domain.meters import Meter, RoutingContext
from kernel.dbconn import Db
from kernel.live_window import live_since, live_since_id, live_until, live_until_id
from workers.meter_locks import lock_or_create, read_meters
from workers.reference_data import CACHE, KINDS, with_reference

# The batch's facts beside its meters' rows (which carry each meter's support: workers/meter_locks.py), one row per
# fact (kind, meter or utility, institution, provider, status or health or preference kind, rank or enabled, weight),
# then the reference data's version and, when the cached copy is stale, the reference tables whole
# (workers/reference_data.py).
FACTS = with_reference(
    """
SELECT 'm', meter_number, institution_id, NULL, NULL, NULL::int, NULL::int FROM rebroadcast_marks
 WHERE meter_number = ANY($1::text[])
UNION ALL SELECT 'r', meter_number, institution_id, provider_id, NULL, NULL, NULL FROM support_resets
 WHERE meter_number = ANY($1::text[]) AND institution_id = ANY($2::text[])
UNION ALL SELECT 'p', meter_number, institution_id, provider_id, NULL, NULL, NULL FROM meter_preferences
 WHERE meter_number = ANY($1::text[]) AND institution_id = ANY($2::text[])"""
)
# The lookup worker's batch also reads, in the same round trip, its attempt ids seen before (within the live window:
# $4, since $5 and before $7) and the meters' open rounds (ids from $6, before $8). The upper bounds let PostgreSQL
# leave the partitions made ahead (db/partitions.py) out while planning: 18 partitions planned and scanned a batch
# instead of 6, 1.2 ms of the statement's 3. Worker sessions plan without parallel workers
# (workers/process.py): as parallel scans these two reads once cost 80 ms instead of 16 over 10 million attempts.
# The open rounds are read meter by meter (LATERAL, OFFSET 0): for `meter_number = ANY(...)` the generic plan a
# worker makes on a new install's empty tables read every open round instead, costing ten index descents against
# one (tests/test_plans_as_tables_grow.py).
LOOKUP_FACTS = (
    FACTS
    + """
UNION ALL SELECT 'a', meter_number, institution_id, attempt_id::text, NULL, NULL, NULL FROM purchase_attempts
 WHERE attempt_id = ANY($4::uuid[]) AND recorded_at >= $5 AND recorded_at < $7
UNION ALL SELECT 'o', k.m, NULL, o.round_id::text, NULL, NULL, NULL FROM unnest($1::text[]) AS k(m)
 CROSS JOIN LATERAL (SELECT round_id FROM lookup_rounds
                     WHERE meter_number = k.m AND closed_at IS NULL AND round_id >= $6 AND round_id < $8 OFFSET 0) o"""
)


@dataclass
class LookupFacts:
    """What the lookup worker reads beside the routing context: its attempts seen before and the open rounds."""

    seen: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)  # attempt → (meter, institution)
    open_rounds: dict[str, uuid.UUID] = field(default_factory=dict)  # meter → its open round
    created: set[str] = field(default_factory=set)  # meters this batch saw first


async def load_context(
    conn: Db, meter_numbers: list[str], institutions: list[str], lock: bool = False
) -> RoutingContext:
    """Reads the meters (locked FOR UPDATE when `lock`, in a fixed order so that batches cannot deadlock)."""
    rows = await read_meters(conn, meter_numbers, lock)
    facts = await conn.fetch(FACTS, meter_numbers, institutions, CACHE.version())
    return _context(rows, facts + await _not_summarised(conn, rows), institutions)


async def _not_summarised(conn: Db, rows: dict[str, asyncpg.Record]) -> list[asyncpg.Record]:
    """Support facts of the meters whose row has no summary yet (an upgrade's backfill has not reached them:
    db/support_backfill.py), read from meter_support: a round trip only while there are such meters."""
    waiting = [n for n, r in rows.items() if r["support"] is None]
    if not waiting:
        return []
    return await conn.fetch(
        """SELECT 's', meter_number, NULL, provider_id, status, NULL, NULL FROM meter_support
           WHERE meter_number = ANY($1::text[])""",
        waiting,
    )


async def load_lookup_context(
    conn: Db,
    meter_numbers: list[str],
    institutions: list[str],
    attempt_ids: list[uuid.UUID],
    key_locks: tuple[int, list[int]] | None = None,
) -> tuple[RoutingContext, LookupFacts]:
    """The meters locked (after the transaction locks `key_locks`), created when new (`lock_or_create`), then their
    facts with the attempts seen and the open rounds, in one statement: the facts see what the holders of those locks
    committed."""
    rows, created = await lock_or_create(conn, meter_numbers, key_locks)
    facts = await conn.fetch(
        LOOKUP_FACTS,
        meter_numbers,
        institutions,
        CACHE.version(),
        attempt_ids,
        live_since(),
        live_since_id(),
        live_until(),
        live_until_id(),
    )
    found = LookupFacts(created=created)
    for kind, key, inst_id, ident, *_ in facts:
        if kind == "a":
            assert key is not None and inst_id is not None and ident is not None
            found.seen[uuid.UUID(ident)] = (key, inst_id)
        elif kind == "o":
            assert key is not None and ident is not None
            found.open_rounds[key] = uuid.UUID(ident)
    return _context(rows, facts + await _not_summarised(conn, rows), institutions), found


def _context(rows: dict[str, asyncpg.Record], facts: list[asyncpg.Record], institutions: list[str]) -> RoutingContext:
    meters: dict[str, Meter] = {}
    for n, r in rows.items():
        meter = meters[n] = Meter(n, r["utility_id"], r["blocked"])
        if support := r["support"]:  # "provider=status,…", provider ids being plain (migration 0020)
            meter.support.update(pair.split("=") for pair in support.split(","))
    version, reference = "", []
    for fact in facts:
        kind, key, inst_id, provider, status, _, _ = fact
        if kind == "m":
            meters[key].marked_by.add(inst_id)
        elif kind == "r":
            meters[key].resets.setdefault(inst_id, set()).add(provider)
        elif kind == "p":
            meters[key].preferred[inst_id] = provider
        elif kind == "s":  # _not_summarised's
            meters[key].support[provider] = status
        elif kind == "v":
            version = key
        elif kind in KINDS:
            reference.append(tuple(fact))
    ref = CACHE.settle(version, reference)
    # Only the batch's institutions: what a context holds of another institution is never routing's to see.
    inst = {i: ref.institution_providers[i] for i in institutions if i in ref.institution_providers}
    prefs = {(i, u): p for i in institutions for u, p in ref.preferences.get(i, {}).items()}
    return RoutingContext(meters, ref.providers, inst, prefs)
