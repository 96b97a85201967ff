"""Routing rules (design section 4) as pure functions: which provider sells this attempt, and why not the others.

Order: the meter-level preference; then the utility's ranked providers in rank order; then its unranked
providers (and any provider the utility does not mention), load-balanced by weight, deterministically for a
given attempt id; excluded providers never. Eligible = enabled, enabled for the institution, not DOWN, and
`supported` for this meter. Nothing eligible: blocked.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Kind = Literal["ranked", "unranked", "excluded"]


class Candidate(NamedTuple):
    """A provider as routing weighs it for one attempt (a tuple: several are made per attempt, on the hot path)."""

    provider_id: str
    enabled: bool
    enabled_for_institution: bool
    health: str  # HEALTHY, DEGRADED, DOWN or MISCONFIGURED
    support: str  # supported, not_supported or unconfirmed


@dataclass(frozen=True)
class Preference:
    provider_id: str
    kind: Kind
    rank: int | None = None
    weight: int = 1


@dataclass(frozen=True)
class Decision:
    provider_id: str | None  # None: blocked
    reason: str
    skipped: list[tuple[str, str]] = field(default_factory=list)


def ineligibility(c: Candidate) -> str | None:
    """Why `c` cannot take this attempt, or None when it can."""
    if not c.enabled:
        return "provider disabled"
    if not c.enabled_for_institution:
        return "not enabled for the institution"
    if c.health in ("DOWN", "MISCONFIGURED"):
        return f"provider {c.health}"
    if c.support != "supported":
        return "not supported" if c.support == "not_supported" else "support unconfirmed"
    return None


def weighted_pick(attempt_id: uuid.UUID, weighted: list[tuple[str, int]]) -> str:
    """Deterministic for an attempt id; over many attempts each provider gets its share of the weight."""
    total = sum(w for _, w in weighted)
    point = int.from_bytes(hashlib.blake2b(attempt_id.bytes, digest_size=8).digest(), "big") % total
    for provider_id, weight in weighted:
        if point < weight:
            return provider_id
        point -= weight
    raise AssertionError("point is always below the total weight")


UNRANKED = "utility preference, unranked by weight"


@dataclass(frozen=True)
class Weighed:
    """Routing that comes down to the weighted pick among `pool` (every other outcome already fixed, `skipped`
    included): the one part of a decision that depends on the attempt id."""

    pool: list[tuple[str, int]]
    skipped: dict[str, str]
    # Per provider picked: the same Decision for every attempt that picks it (never mutated once made).
    _made: dict[str, Decision] = field(default_factory=dict, compare=False, repr=False)

    def pick(self, attempt_id: uuid.UUID) -> Decision:
        pid = weighted_pick(attempt_id, self.pool)
        made = self._made.get(pid)
        if made is None:
            made = self._made[pid] = _chosen(pid, UNRANKED, self.skipped)
        return made


def _chosen(pid: str, reason: str, skipped: dict[str, str]) -> Decision:
    """`pid` chosen for `reason`; every other provider skipped, with why."""
    return Decision(pid, reason, sorted((p, r) for p, r in skipped.items() if p != pid))


def picked(found: Decision | Weighed, attempt_id: uuid.UUID) -> Decision:
    """The decision for `attempt_id` from what `route` found."""
    return found.pick(attempt_id) if isinstance(found, Weighed) else found


def decide(
    attempt_id: uuid.UUID,
    candidates: list[Candidate],
    preferences: list[Preference],
    meter_preference: str | None,
) -> Decision:
    return picked(route(candidates, preferences, meter_preference), attempt_id)


def route(
    candidates: list[Candidate], preferences: list[Preference], meter_preference: str | None
) -> Decision | Weighed:
    """`decide` up to the weighted pick: the same for every attempt with these inputs (domain/meters.py caches it
    per batch)."""
    by_id = {c.provider_id: c for c in candidates}
    skipped: dict[str, str] = {}

    def eligible(pid: str) -> bool:
        why = ineligibility(by_id[pid]) if pid in by_id else "unknown provider"
        if why is not None:
            skipped.setdefault(pid, why)
        return why is None

    prefs = {p.provider_id: p for p in preferences}
    excluded = {pid for pid, p in prefs.items() if p.kind == "excluded"}
    for pid in sorted(excluded & set(by_id)):
        skipped[pid] = "excluded by the utility"
    if meter_preference is not None:
        if meter_preference in excluded:
            pass  # an exclusion is never overridden, not even by a meter preference
        elif eligible(meter_preference):
            return _chosen(meter_preference, "meter-level routing preference", skipped)
    ranked = sorted((p for p in preferences if p.kind == "ranked"), key=lambda p: (p.rank or 0, p.provider_id))
    for p in ranked:
        if eligible(p.provider_id):
            return _chosen(p.provider_id, f"utility preference, rank {p.rank}", skipped)
    unranked = [(p.provider_id, p.weight) for p in preferences if p.kind == "unranked"]
    unranked += [(pid, 1) for pid in sorted(by_id) if pid not in prefs]  # not mentioned: unranked, weight 1
    pool = [(pid, w) for pid, w in unranked if eligible(pid) and w > 0]
    for pid, w in unranked:
        if w <= 0 and pid not in skipped:
            skipped[pid] = "weight 0"
    if pool:
        return Weighed(pool, skipped)
    return Decision(None, "no eligible provider supports the meter", sorted(skipped.items()))


def settled(
    attempt_id: uuid.UUID,
    candidates: list[Candidate],
    preferences: list[Preference],
    meter_preference: str | None,
    unanswered: set[str],
) -> Decision | None:
    """The decision if no answer still awaited could change it, else None (keep waiting). Only the awaited answers
    of the institution's own usable providers could: another institution's provider, or one disabled or down, holds
    nothing up."""
    now = decide(attempt_id, candidates, preferences, meter_preference)
    hopeful = [
        Candidate(
            c.provider_id,
            c.enabled,
            c.enabled_for_institution,
            c.health,
            "supported" if c.provider_id in unanswered else c.support,
        )
        for c in candidates
    ]
    best = decide(attempt_id, hopeful, preferences, meter_preference)
    return now if best.provider_id == now.provider_id else None
