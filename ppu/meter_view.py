"""What an operator sees of one meter (the CLI's `ppu meter show`, and the console's meter page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ppu.dbconn import Db

STATUS_LABELS = {"supported": "Supported", "not_supported": "Not Supported", "unconfirmed": "Unconfirmed"}


@dataclass(frozen=True)
class ProviderRow:
    provider_id: str  # our registry's key
    electrum_id: str | None  # the guide's "Provider ID": the institution id Electrum assigned
    name: str
    status: str
    last_response_at: datetime | None
    last_lookup_sent_at: datetime | None
    details: dict[str, Any] | None = None  # what its last answer said: utility, customer, purchase limits

    @property
    def shown_id(self) -> str:
        return self.electrum_id or "—"

    @property
    def awaiting_confirmation(self) -> bool:
        """The guide: no response since the last lookup broadcast, or never responded."""
        if self.last_response_at is None:
            return True
        return self.last_lookup_sent_at is not None and self.last_response_at < self.last_lookup_sent_at

    def last_response_text(self, now: datetime | None = None) -> str:
        if self.awaiting_confirmation or self.last_response_at is None:
            return "Awaiting confirmation"
        return f"{since(self.last_response_at, now)} ago"


def since(at: datetime, now: datetime | None = None) -> str:
    seconds = int(((now or datetime.now(UTC)) - at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{max(seconds, 0)} s"


@dataclass(frozen=True)
class MeterView:
    meter_number: str
    utility: str  # the utility's name, or "Unassigned"
    blocked: bool
    marked_for_rebroadcast: bool
    marked_by: str | None
    marked_at: datetime | None
    preferred_provider_id: str | None
    providers: list[ProviderRow]
    decisions: list[asyncpg.Record]


async def load_meter(conn: Db, meter_number: str, institution_id: str | None) -> MeterView | None:
    """The meter with one row per provider (those enabled for `institution_id`, or all when None)."""
    m = await conn.fetchrow(
        """SELECT m.*, u.name AS utility_name FROM meters m LEFT JOIN utilities u USING (utility_id)
           WHERE m.meter_number = $1""",
        meter_number,
    )
    if m is None:
        return None
    rows = await conn.fetch(
        """SELECT p.provider_id, p.electrum_id, p.name, coalesce(s.status, 'unconfirmed') AS status,
                  s.last_response_at, s.last_lookup_sent_at, s.details
           FROM providers p LEFT JOIN meter_support s ON s.provider_id = p.provider_id AND s.meter_number = $1
           WHERE $2::text IS NULL OR p.provider_id IN
                 (SELECT provider_id FROM institution_providers WHERE institution_id = $2)
           ORDER BY p.provider_id""",
        meter_number,
        institution_id,
    )
    decisions = await conn.fetch(
        """SELECT attempt_id, outcome, provider_id, reason, skipped, decided_at FROM routing_decisions
           WHERE meter_number = $1 ORDER BY decided_at DESC LIMIT 10""",
        meter_number,
    )
    return MeterView(
        m["meter_number"],
        m["utility_name"] or "Unassigned",
        m["blocked"],
        m["marked_for_rebroadcast"],
        m["marked_by"],
        m["marked_at"],
        m["preferred_provider_id"],
        [
            ProviderRow(
                r["provider_id"],
                r["electrum_id"],
                r["name"],
                r["status"],
                r["last_response_at"],
                r["last_lookup_sent_at"],
                r["details"],
            )
            for r in rows
        ],
        list(decisions),
    )


def render_text(v: MeterView) -> str:
    lines = [
        f"meter     {v.meter_number}",
        f"utility   {v.utility}",
        f"blocked   {'yes' if v.blocked else 'no'}",
        f"rebroadcast {'marked by ' + str(v.marked_by) if v.marked_for_rebroadcast else 'not marked'}",
        "",
        f"{'Provider ID':14}{'Provider':24}{'Last response':24}Support status",
    ]
    lines += [
        f"{p.shown_id:14}{_cut(p.name, 23):24}{p.last_response_text():24}{STATUS_LABELS[p.status]}" for p in v.providers
    ]
    if v.decisions:
        lines += ["", "latest routing decisions:"]
        lines += [
            f"  {d['decided_at']:%Y-%m-%d %H:%M:%S} {d['outcome']:8}{d['provider_id'] or '-':14}{d['reason']}"
            for d in v.decisions
        ]
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
