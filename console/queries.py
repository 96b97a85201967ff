"""Reads for the console: meter search, routing preferences, audit log."""

from __future__ import annotations

import re
from typing import Any

from ppu.dbconn import Db

SEARCH_LIMIT = 10


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
                """SELECT meter_number FROM meters WHERE meter_number LIKE '%' || $1 || '%'
                 AND meter_number NOT LIKE $1 || '%'
               ORDER BY meter_number LIMIT $2""",
                q,
                limit - len(found),
            )
        ]
    return found


async def enabled_providers(conn: Db, institution_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT p.provider_id, p.name, p.enabled, p.health FROM providers p
           JOIN institution_providers i USING (provider_id) WHERE i.institution_id = $1 ORDER BY p.provider_id""",
        institution_id,
    )
    return [dict(r) for r in rows]


async def utilities_with_preferences(conn: Db) -> list[dict[str, Any]]:
    utilities = await conn.fetch("SELECT utility_id, name FROM utilities ORDER BY name")
    prefs = await conn.fetch(
        "SELECT utility_id, provider_id, kind, rank, weight FROM utility_routing_preferences "
        "ORDER BY utility_id, kind, rank NULLS LAST, provider_id"
    )
    out = []
    for u in utilities:
        out.append(
            {
                "utility_id": u["utility_id"],
                "name": u["name"],
                "preferences": [dict(p) for p in prefs if p["utility_id"] == u["utility_id"]],
            }
        )
    return out


async def audit_entries(conn: Db, institution_id: str, limit: int = 200) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT at, actor, action, target, outcome, details FROM audit_log WHERE institution_id = $1
           ORDER BY audit_id DESC LIMIT $2""",
        institution_id,
        limit,
    )
    return [dict(r) for r in rows]
