"""The one layer through which the console, the API and the CLI read and write: everything is asked of a Tenant
(one institution), so no query can forget whose data it is. The rules are in docs/tenancy.md: what providers
answered about a meter is shared; enabled providers, rebroadcast marks, resets to Unconfirmed, routing
preferences, purchase attempts and decisions, commands, users and the audit log are the institution's own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.audit import AuditRow, write_audit
from db.provider_health import provider_health
from domain.health import Health
from kernel.dbconn import Db
from kernel.errors import PpuError
from operations.meter_view import MeterView, OpenRound, ProviderRow
from operations.timeline import Entry, meter_timeline

UNUSABLE = ("DOWN", "MISCONFIGURED")


class NotYours(Exception):
    """A provider the institution may not use (the console answers 403)."""


class Unknown(NotYours):
    """A meter or utility that does not exist (the console answers 404)."""


@dataclass(frozen=True)
class Tenant:
    institution_id: str

    @classmethod
    async def known(cls, conn: Db, institution_id: str) -> Tenant:
        if not await conn.fetchval("SELECT true FROM institutions WHERE institution_id = $1", institution_id):
            raise PpuError(f"unknown institution {institution_id}")
        return cls(institution_id)

    async def providers(self, conn: Db) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            """SELECT p.provider_id, p.electrum_id, p.name, p.enabled, p.health FROM providers p
               JOIN institution_providers i USING (provider_id) WHERE i.institution_id = $1 ORDER BY p.provider_id""",
            self.institution_id,
        )
        return [dict(r) for r in rows]

    async def check_provider(self, conn: Db, provider_id: str) -> None:
        if not await conn.fetchval(
            "SELECT true FROM institution_providers WHERE institution_id = $1 AND provider_id = $2",
            self.institution_id,
            provider_id,
        ):
            raise NotYours(f"provider {provider_id} is not enabled for {self.institution_id}")

    async def health(self, conn: Db, window_minutes: int) -> list[Health]:
        own = [p["provider_id"] for p in await self.providers(conn)]
        return await provider_health(conn, window_minutes, own)

    async def meter(self, conn: Db, meter_number: str) -> MeterView | None:
        """The meter as this institution sees it: shared answers, with its own resets, mark, preference and
        decisions, over the providers enabled for it."""
        m = await conn.fetchrow(
            """SELECT m.meter_number, m.blocked, u.name AS utility_name, k.marked_by, k.marked_at, mp.provider_id
               FROM meters m LEFT JOIN utilities u USING (utility_id)
               LEFT JOIN rebroadcast_marks k ON k.meter_number = m.meter_number AND k.institution_id = $2
               LEFT JOIN meter_preferences mp ON mp.meter_number = m.meter_number AND mp.institution_id = $2
               WHERE m.meter_number = $1""",
            meter_number,
            self.institution_id,
        )
        if m is None:
            return None
        rows = await conn.fetch(
            """SELECT p.provider_id, p.electrum_id, p.name, p.enabled, p.health,
                      CASE WHEN r.provider_id IS NOT NULL THEN 'unconfirmed'
                           ELSE coalesce(s.status, 'unconfirmed') END AS status,
                      s.last_response_at, s.last_lookup_sent_at, s.details, s.answered_sent_at
               FROM providers p JOIN institution_providers ip ON ip.provider_id = p.provider_id
               LEFT JOIN meter_support s ON s.provider_id = p.provider_id AND s.meter_number = $1
               LEFT JOIN support_resets r ON r.meter_number = $1 AND r.provider_id = p.provider_id
                                         AND r.institution_id = ip.institution_id
               WHERE ip.institution_id = $2 ORDER BY p.provider_id""",
            meter_number,
            self.institution_id,
        )
        decisions = await conn.fetch(
            """SELECT attempt_id, outcome, provider_id, reason, skipped, decided_at FROM purchase_attempts
               WHERE meter_number = $1 AND institution_id = $2 AND outcome IS NOT NULL
               ORDER BY received_at DESC LIMIT 10""",
            meter_number,
            self.institution_id,
        )
        opened = await conn.fetchrow(
            """SELECT r.reason, r.opened_at, r.deadline,
                      coalesce(array_agg(l.provider_id ORDER BY l.provider_id)
                               FILTER (WHERE l.responded_at IS NOT NULL), '{}') AS answered,
                      coalesce(array_agg(l.provider_id ORDER BY l.provider_id)
                               FILTER (WHERE l.responded_at IS NULL), '{}') AS pending,
                      (SELECT count(*) FROM purchase_attempts a WHERE a.round_id = r.round_id
                          AND a.decided_at IS NULL AND a.institution_id = $2) AS waiting
               FROM lookup_rounds r JOIN lookups l USING (round_id)
               JOIN institution_providers ip ON ip.provider_id = l.provider_id AND ip.institution_id = $2
               WHERE r.meter_number = $1 AND r.closed_at IS NULL
               GROUP BY r.round_id ORDER BY r.opened_at DESC LIMIT 1""",
            meter_number,
            self.institution_id,
        )
        open_round = (
            OpenRound(
                opened["reason"],
                opened["opened_at"],
                opened["deadline"],
                list(opened["answered"]),
                list(opened["pending"]),
                opened["waiting"],
            )
            if opened is not None
            else None
        )
        serving = any(r["status"] == "supported" and r["enabled"] and r["health"] not in UNUSABLE for r in rows)
        return MeterView(
            m["meter_number"],
            m["utility_name"] or "Unassigned",
            m["blocked"] and not serving,
            m["marked_by"] is not None,
            m["marked_by"],
            m["marked_at"],
            m["provider_id"],
            [
                ProviderRow(
                    r["provider_id"],
                    r["electrum_id"],
                    r["name"],
                    r["status"],
                    r["last_response_at"],
                    r["last_lookup_sent_at"],
                    r["details"],
                    r["answered_sent_at"],
                    r["enabled"],
                )
                for r in rows
            ],
            list(decisions),
            open_round,
        )

    async def timeline(
        self, conn: Db, meter_number: str, before: datetime | None = None, limit: int = 50
    ) -> list[Entry] | None:
        """The meter's history as this institution may see it (operations/timeline.py), newest first; None for an
        unknown meter."""
        if not await conn.fetchval("SELECT true FROM meters WHERE meter_number = $1", meter_number):
            return None
        return await meter_timeline(conn, self.institution_id, meter_number, before, limit)

    async def utilities(self, conn: Db) -> list[dict[str, Any]]:
        """Utilities are shared; the preferences listed are this institution's."""
        utilities = await conn.fetch("SELECT utility_id, name FROM utilities ORDER BY name")
        prefs = await conn.fetch(
            """SELECT utility_id, provider_id, kind, rank, weight FROM utility_routing_preferences
               WHERE institution_id = $1 ORDER BY utility_id, kind, rank NULLS LAST, provider_id""",
            self.institution_id,
        )
        return [
            {
                "utility_id": u["utility_id"],
                "name": u["name"],
                "preferences": [
                    {k: v for k, v in p.items() if k != "utility_id"}
                    for p in prefs
                    if p["utility_id"] == u["utility_id"]
                ],
            }
            for u in utilities
        ]

    async def audit_entries(self, conn: Db, limit: int = 200) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            """SELECT at, actor, action, target, outcome, details FROM audit_log WHERE institution_id = $1
               ORDER BY audit_id DESC LIMIT $2""",
            self.institution_id,
            limit,
        )
        return [dict(r) for r in rows]

    async def audit(self, conn: Db, actor: str, action: str, target: str | None, outcome: str, details: Any) -> None:
        await write_audit(conn, [AuditRow(actor, self.institution_id, action, target, outcome, details or {})])

    async def set_meter_preference(self, conn: Db, actor: str, meter_number: str, provider_id: str | None) -> None:
        if provider_id:
            await self.check_provider(conn, provider_id)
        async with conn.transaction():
            if not await conn.fetchval("SELECT true FROM meters WHERE meter_number = $1", meter_number):
                raise Unknown(f"unknown meter {meter_number}")
            before = await conn.fetchval(
                "DELETE FROM meter_preferences WHERE meter_number = $1 AND institution_id = $2 RETURNING provider_id",
                meter_number,
                self.institution_id,
            )
            if provider_id:
                await conn.execute(
                    "INSERT INTO meter_preferences VALUES ($1, $2, $3)", meter_number, self.institution_id, provider_id
                )
            details = {"before": before, "after": provider_id}
            await self.audit(conn, actor, "set_meter_preference", meter_number, "changed", details)

    async def set_utility_preference(
        self, conn: Db, actor: str, utility_id: str, provider_id: str, kind: str | None, rank: int | None, weight: int
    ) -> None:
        """Sets (or with kind None removes) one of its providers' place in its preferences for a utility."""
        await self.check_provider(conn, provider_id)
        async with conn.transaction():
            if not await conn.fetchval("SELECT true FROM utilities WHERE utility_id = $1", utility_id):
                raise Unknown(f"unknown utility {utility_id}")
            key = (self.institution_id, utility_id, provider_id)
            before = await conn.fetchrow(
                """DELETE FROM utility_routing_preferences WHERE institution_id = $1 AND utility_id = $2
                   AND provider_id = $3 RETURNING kind, rank, weight""",
                *key,
            )
            if kind is not None:
                await conn.execute(
                    """INSERT INTO utility_routing_preferences (institution_id, utility_id, provider_id, kind, rank,
                                                                weight) VALUES ($1, $2, $3, $4, $5, $6)""",
                    *key,
                    kind,
                    rank if kind == "ranked" else None,
                    weight,
                )
            after = {"kind": kind, "rank": rank, "weight": weight} if kind else None
            details = {"before": dict(before) if before else None, "after": after}
            await self.audit(conn, actor, "set_utility_preference", f"{utility_id}/{provider_id}", "changed", details)
