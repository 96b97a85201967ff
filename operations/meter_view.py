"""What an operator sees of one meter (the CLI's `ppu meter show`, and the console's meter page); loaded for
one institution by operations/tenancy.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

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
    answered_sent_at: datetime | None = None  # when the lookup its last answer belongs to was sent
    enabled: bool = True  # false: disabled for every institution (routing skips it)

    @property
    def shown_id(self) -> str:
        return self.electrum_id or "—"

    @property
    def awaiting_confirmation(self) -> bool:
        """The guide: no response since the last lookup broadcast, or never responded."""
        if self.last_response_at is None:
            return True
        if self.last_lookup_sent_at is None:
            return False
        if self.answered_sent_at is not None:  # one clock: both are the database's
            return self.answered_sent_at < self.last_lookup_sent_at
        return self.last_response_at < self.last_lookup_sent_at

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
class OpenRound:
    """A round still collecting answers, over the viewing institution's own providers only."""

    reason: str
    opened_at: datetime
    deadline: datetime
    answered: list[str]
    pending: list[str]
    waiting_attempts: int  # the institution's purchases not decided yet

    def text(self) -> str:
        return (
            f"{self.reason} round opened {since(self.opened_at)} ago: answered {', '.join(self.answered) or 'none'}; "
            f"pending {', '.join(self.pending) or 'none'}; {self.waiting_attempts} purchase(s) waiting"
        )


@dataclass(frozen=True)
class MeterView:
    meter_number: str
    utility: str  # the utility's name, or "Unassigned"
    blocked: bool  # for the viewing institution: blocked, and none of its usable providers supports it
    marked_for_rebroadcast: bool  # by the viewing institution
    marked_by: str | None  # one of its own users
    marked_at: datetime | None
    preferred_provider_id: str | None  # its meter-level preference
    providers: list[ProviderRow]
    decisions: list[asyncpg.Record]
    open_round: OpenRound | None = None


def render_text(v: MeterView) -> str:
    lines = [
        f"meter     {v.meter_number}",
        f"utility   {v.utility}",
        f"blocked   {'yes' if v.blocked else 'no'}",
        f"rebroadcast {'marked by ' + str(v.marked_by) if v.marked_for_rebroadcast else 'not marked'}",
        f"open round {v.open_round.text() if v.open_round else 'none'}",
        "",
        f"{'Provider ID':14}{'Provider':24}{'Last response':24}Support status",
    ]
    lines += [
        f"{p.shown_id:14}{_cut(p.name if p.enabled else p.name + ' (disabled)', 23):24}"
        f"{p.last_response_text():24}{STATUS_LABELS[p.status]}"
        for p in v.providers
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
