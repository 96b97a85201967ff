"""Statistics for tables that have just begun to fill: analysed by the sweeper within seconds, not by autovacuum
within a minute or more.

The workers' sessions keep one generic plan per statement (workers/process.session_settings) until the tables'
statistics change. On a new install, and on each new time partition (db/partitions.py), those plans are made on
tables PostgreSQL believes empty, where reading a whole index range costs no more than reading a batch's keys; as
the tables fill at 1,000 attempts/s the kept plans read every row of the live window. Stop 47's soak measured it:
PostgreSQL at a core and decisions at 2.6 s p99 for the first minute, until autovacuum analysed the tables and the
plans were made again (tests/test_plans_as_tables_grow.py). Analysing a table invalidates the plans that read it;
made again on 10,000 rows they read by key from then on (on 1,000, some still did not).

Autovacuum cannot be asked for this from here (its thresholds are the server's), so the sweeper does it: a table
analysed with fewer than YOUNG_ROWS rows (or never) that now holds more. Once analysed with more it is not young
again, and autovacuum keeps its statistics as before. Only tables the session may analyse are chosen (it owns them,
through its role or the database's, or is a superuser): for another table ANALYZE would only warn and skip it, and
the sweeper would warn every two seconds until autovacuum analysed the table.
"""

from __future__ import annotations

from kernel.dbconn import Db

YOUNG_ROWS = 10_000

# The workers' tables (this schema) analysed with fewer rows than they now hold. First the partitioned ones, whose
# statistics as a whole PostgreSQL estimates joins with and autovacuum never makes (ANALYZE of one recurses into its
# partitions); then any partition still young, such as a new time partition of a table analysed long ago. Only what
# this session may analyse (PostgreSQL 15's rule: the table's owner or the database's, a superuser passing both).
MAY_ANALYSE = """(pg_has_role(c.relowner, 'USAGE')
      OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE'))"""
YOUNG_PARTITIONED = f"""SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind = 'p' AND c.reltuples < $1 AND {MAY_ANALYSE}
      AND (SELECT sum(s.n_live_tup) FROM pg_inherits i JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
           WHERE i.inhparent = c.oid) >= $1
    ORDER BY c.relname"""
YOUNG_TABLES = f"""SELECT format('%I.%I', s.schemaname, s.relname) FROM pg_stat_user_tables s
    JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND c.relkind = 'r' AND c.reltuples < $1 AND s.n_live_tup >= $1
      AND {MAY_ANALYSE}
    ORDER BY s.relname"""


async def analyze_young_tables(conn: Db, rows: int = YOUNG_ROWS) -> list[str]:
    """ANALYZE each young table (names from the catalogue, quoted by `format`); returns them."""
    analysed: list[str] = []
    for find in (YOUNG_PARTITIONED, YOUNG_TABLES):
        for (table,) in await conn.fetch(find, rows):
            await conn.execute(f"ANALYZE {table}")
            analysed.append(table)
    return analysed
