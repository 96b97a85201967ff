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
    """Prefix matches first, then (from three characters on) matches anywhere in the number."""
    q = clean_query(q)
    if not q:
        return []
    rows = await conn.fetch(
        """(SELECT meter_number, 0 AS rank FROM meters WHERE meter_number LIKE $1 || '%'
            ORDER BY meter_number LIMIT $2)
           UNION ALL
           (SELECT meter_number, 1 FROM meters
            WHERE length($1) >= 3 AND meter_number LIKE '%' || $1 || '%' AND meter_number NOT LIKE $1 || '%'
            ORDER BY meter_number LIMIT $2)
           ORDER BY rank, meter_number LIMIT $2""",
        q,
        limit,
    )
    return [r["meter_number"] for r in rows]


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
