"""What a batch of provider answers changes (design section 3, "Responses").

- An answer must match a lookup we sent to that provider for that meter; otherwise it is refused.
- A provider's `responded_at` is its clock: dated further ahead than the allowed skew, it is clamped to the time
  we received it. It orders nothing.
- Per (meter, provider) the newest answer counts: the answer to the lookup sent last, then, among answers to the
  same lookup, the one received last. An answer to a lookup older than the one whose answer is recorded is stale
  and changes nothing, so a late answer to an old round never overwrites the answer to a re-check.
- What a provider says is shared knowledge; a status that differs from the recorded one is a change (the
  recorded one is Unconfirmed when there is none).
- A blocked meter that gets a Supported answer is unblocked.
- A provider that names the utility of an Unassigned meter assigns the meter to that utility.
- An answer to a lookup sent at or after an institution reset that provider to Unconfirmed ends the reset; an
  answer to a rebroadcast round that an institution opened at or after marking the meter clears its mark. These
  two compare rows only the database holds, so workers/responses.py applies them in one set-based statement each
  rather than reading the rows back first.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from schemas.lookup import LookupRespondedData

Key = tuple[str, str]  # (meter, provider)
T = TypeVar("T")


@dataclass(frozen=True)
class SentLookup:
    lookup_id: uuid.UUID
    provider_id: str
    meter_number: str
    sent_at: datetime
    round_id: uuid.UUID
    reason: str
    opened_at: datetime
    institution_id: str | None


@dataclass(frozen=True)
class Recorded:
    """The answer on record for a (meter, provider): its status and when the lookup it answered was sent."""

    status: str
    answered_sent_at: datetime | None


@dataclass(frozen=True)
class Change:
    meter_number: str
    provider_id: str
    previous: str
    status: str


def clamped(responded_at: datetime, received_at: datetime, max_skew_seconds: float) -> datetime:
    return received_at if responded_at > received_at + timedelta(seconds=max_skew_seconds) else responded_at


def mismatch(answer: LookupRespondedData, sent: SentLookup | None) -> str | None:
    """Why this answer cannot be accepted, or None."""
    if sent is None:
        return f"unknown lookup id {answer.lookup_id}"
    if (sent.provider_id, sent.meter_number) != (answer.provider_id, answer.meter_number):
        return (
            f"lookup {answer.lookup_id} was sent to {sent.provider_id} for meter {sent.meter_number}, "
            f"not to {answer.provider_id} for {answer.meter_number}"
        )
    return None


def newest(matched: list[tuple[T, LookupRespondedData, SentLookup]]) -> dict[Key, tuple[T, SentLookup]]:
    """The newest answer per (meter, provider) among `matched` (in the order received), with what it carries."""
    found: dict[Key, tuple[T, SentLookup]] = {}
    for item, answer, sent in matched:
        key = (answer.meter_number, answer.provider_id)
        if key not in found or found[key][1].sent_at <= sent.sent_at:
            found[key] = (item, sent)
    return found


def is_stale(sent: SentLookup, recorded: Recorded | None) -> bool:
    return recorded is not None and recorded.answered_sent_at is not None and recorded.answered_sent_at > sent.sent_at


def change(key: Key, status: str, recorded: Recorded | None) -> Change | None:
    previous = recorded.status if recorded is not None else "unconfirmed"
    return Change(key[0], key[1], previous, status) if previous != status else None


def to_unblock(changes: list[Change], blocked: set[str]) -> dict[str, str]:
    """Blocked meters that a provider now supports → that provider (the last by id when several)."""
    found: dict[str, str] = {}
    for c in sorted(changes, key=lambda c: (c.meter_number, c.provider_id)):
        if c.status == "supported" and c.meter_number in blocked:
            found[c.meter_number] = c.provider_id
    return found


def utilities_named(answers: list[LookupRespondedData], unassigned: set[str]) -> dict[str, str]:
    """Unassigned meters → the utility name a provider gave (the last one received wins)."""
    return {a.meter_number: a.utility.name for a in answers if a.utility is not None and a.meter_number in unassigned}


def utility_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "utility"
