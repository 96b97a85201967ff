"""Months of history for `lookup_10m_history_vs_empty_ratio`: the lookup flow against a database that already holds
ten million attempts (each decided: its decision on its row, migration 0019), rounds and lookups, spread over 90
days on the bench's meters.

Made once per schema and size as a template database (a few minutes on two cores) and copied for each run
(CREATE DATABASE … TEMPLATE: a file copy), so a run measures the flow, not the loading.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.env import BenchEnv, drop_database, other_database, prepare, prepare_topics, server_admin
from db.migrate import MIGRATIONS
from db.partitions import HISTORY, Maintained, ensure

HISTORY_ROWS = 10_000_000

# One row per historic attempt in each table. `$1` rows, `$2` meters; times spread evenly over the last 90 days;
# our own ids are UUIDv7 made from those times (as kernel/ids.py makes them), the purchase service's attempt ids
# are random (gen_random_uuid), as a real one's may be.
SPREAD = """FROM generate_series(1, $1::int) g,
     LATERAL (SELECT now() - interval '90 days' + g * (interval '90 days' / $1::int) AS t,
                     '06' || lpad((g % $2::int)::text, 8, '0') AS m) x"""
V7 = """(lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5({salt} || g::text), 1, 3)
        || '8' || substr(md5({salt} || g::text), 4, 15))::uuid"""
FILL = [
    f"""INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, decided_at, recorded_at,
                                      outcome, provider_id, reason, skipped)
        SELECT gen_random_uuid(), m, 'bench-bank', t, t, t, 'routed', 'bp1', 'preferred', '[]' {SPREAD}""",
    f"""INSERT INTO lookup_rounds (round_id, meter_number, reason, opened_at, deadline, closed_at, providers_asked,
                                  institution_id)
        SELECT {V7.format(salt="'r'")}, m, 'routine', t, t + interval '60 seconds', t, ARRAY['bp1'], 'bench-bank'
        {SPREAD}""",
    f"""INSERT INTO lookups (lookup_id, round_id, meter_number, provider_id, sent_at, responded_at, status)
        SELECT {V7.format(salt="'l'")}, {V7.format(salt="'r'")}, m, 'bp1', t, t, 'supported' {SPREAD}""",
]


def template_name(rows: int) -> str:
    migrations = "".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))
    # The partitions' widths too: a template made at other widths measures another layout.
    widths = "".join(f"{h.table}:{h.step_days}" for h in HISTORY)
    schema = hashlib.sha256((migrations + "".join(FILL) + widths).encode())
    return f"bench_history_{rows}_{schema.hexdigest()[:10]}"


async def with_history(tag: str, rows: int) -> BenchEnv:
    """A fresh bench database holding `rows` of history (the template is built first when missing)."""
    name = template_name(rows)
    # Migrated, with the bench's reference rows: what the template starts from (its topics would go unused).
    probe = await prepare(f"{tag}t", topics=False)
    async with server_admin() as admin:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            # Filled under another name and renamed when complete: a run stopped halfway leaves no template that
            # looks whole.
            # A half-filled one of an earlier run (`{name}_part`) and templates of other migrations (gigabytes each)
            # are of no further use.
            for stale in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_history\\_%' AND datname <> $1", name
            ):
                await drop_database(admin, stale["datname"])
            await admin.execute(f"CREATE DATABASE {name}_part TEMPLATE bench_{tag}t")
            await _fill(other_database(probe.database_url, f"{name}_part"), rows)
            await admin.execute(f"ALTER DATABASE {name}_part RENAME TO {name}")
        await admin.execute(f"DROP DATABASE IF EXISTS bench_{tag}t")
    env = await prepare(tag, template=name)
    await _warm_up(env)
    return env


async def _warm_up(env: BenchEnv) -> None:
    """A short lookup flow on the same database (its own topics), not measured: a running system's caches hold
    the hot pages of its indexes, a database copied a moment ago holds none."""
    from bench import flows

    warm = await prepare_topics(env, "w")
    await flows.preload_meters(warm, 10_000)
    await flows.lookup_flow(warm, 5000, 10_000)


async def _fill(url: str, rows: int, meters: int = 10_000) -> None:
    conn = await asyncpg.connect(url, command_timeout=None)
    try:
        # Each day of the spread in its own partition, as a system running for 90 days has them.
        today = datetime.now(UTC).date()
        for h in HISTORY:
            await ensure(conn, h, today - timedelta(days=91), today + timedelta(days=1), Maintained())
        for statement in FILL:
            await conn.execute(statement, *((rows, meters) if "$1" in statement else ()))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
