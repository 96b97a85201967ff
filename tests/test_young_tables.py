"""The sweeper's analysis of young tables (db/young_tables.py) only picks tables its session may analyse: for one it
does not own, ANALYZE would only warn, every two seconds, until autovacuum analysed the table."""

from __future__ import annotations

import uuid

import asyncpg

from db.young_tables import analyze_young_tables

ROWS = 50  # a young table's threshold, lowered so that a few rows make one


async def test_only_tables_the_session_may_analyse_are_analysed(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    warnings: list[str] = []
    conn.add_log_listener(lambda _c, message: warnings.append(str(message)))
    role = f"reader_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(
            "INSERT INTO meters (meter_number) SELECT '07' || g FROM generate_series(1, $1::int) g", ROWS
        )
        await conn.execute("SELECT pg_stat_force_next_flush()")  # n_live_tup seen now, not at the next report
        await conn.execute(f"CREATE ROLE {role} NOLOGIN")
        await conn.execute(
            f"GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        )
        await conn.execute(f"SET ROLE {role}")
        # Neither the table's owner nor the database's: the young table is left to autovacuum, without a warning.
        assert await analyze_young_tables(conn, ROWS) == []
        assert warnings == []
        await conn.execute("RESET ROLE")
        # The owner analyses it (this is what the reader could not do).
        assert "public.meters" in await analyze_young_tables(conn, ROWS)
        assert await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'meters'") >= ROWS
    finally:
        await conn.execute("RESET ROLE")
        await conn.execute(f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}")
        await conn.close()
