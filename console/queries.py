"""Meter search: meter numbers are shared facts (everything per institution is in operations/tenancy.py)."""

from __future__ import annotations

import re

from kernel.dbconn import Db

SEARCH_LIMIT = 10
# The console pool's sessions (console/app.py; the bench times its pages in the same). Custom plans: infix search uses
# the trigram index only when planned for its actual pattern. No JIT: a page reads few rows from many partitions, and
# compiling such a plan took 30 s of a meter page over 10 million attempts.
SESSION_SETTINGS = {"plan_cache_mode": "force_custom_plan", "jit": "off"}


def clean_query(q: str) -> str:
    """Meter numbers are letters and digits: anything else is dropped, so no input reaches SQL as a pattern."""
    return re.sub(r"[^A-Za-z0-9]", "", q)[:20]


async def search_meters(conn: Db, q: str, limit: int = SEARCH_LIMIT) -> list[str]:
    """Prefix matches first, then (from three characters on, if the prefix left room) matches anywhere."""
    q = clean_query(q)
    if not q:
        return []
    # The prefix is a bytewise range (text_pattern_ops operators): it uses the prefix index even in the generic
    # plan of a prepared statement, which a `LIKE $1 || '%'` cannot.
    found = [
        r["meter_number"]
        for r in await conn.fetch(
            """SELECT meter_number FROM meters WHERE meter_number ~>=~ $1 AND meter_number ~<~ ($1 || '~')
           ORDER BY meter_number USING ~<~ LIMIT $2""",
            q,
            limit,
        )
    ]
    if len(found) < limit and len(q) >= 3:  # trigram index; only asked when needed (common infixes are costly)
        found += [
            r["meter_number"]
            for r in await conn.fetch(
                # lower(): the trigram index is on that expression, so that the hot path's `meter_number = ANY`
                # is never planned on it (db/migrations/0015_meter_search_off_the_hot_path.sql).
                """SELECT meter_number FROM meters WHERE lower(meter_number) LIKE '%' || lower($1) || '%'
                 AND meter_number NOT LIKE $1 || '%'
               ORDER BY meter_number LIMIT $2""",
                q,
                limit - len(found),
            )
        ]
    return found
