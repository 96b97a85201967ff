"""A batch of meters as routing sees them, per institution: what is shared and what each institution decided."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from domain.routing import Candidate, Decision, Preference, Weighed, picked, route


@dataclass
class Meter:
    """A meter as routing sees it: the shared facts (utility, each provider's last answer), and per institution
    what that institution decided (its rebroadcast mark, its resets to Unconfirmed, its meter preference)."""

    meter_number: str
    utility_id: str | None
    blocked: bool
    support: dict[str, str] = field(default_factory=dict)  # provider → its last answer (shared)
    marked_by: set[str] = field(default_factory=set)  # institutions that asked for a re-check
    resets: dict[str, set[str]] = field(default_factory=dict)  # institution → providers it reset to Unconfirmed
    preferred: dict[str, str] = field(default_factory=dict)  # institution → meter-level preferred provider

    def status_for(self, institution_id: str, provider_id: str) -> str:
        if provider_id in self.resets.get(institution_id, set()):
            return "unconfirmed"
        return self.support.get(provider_id, "unconfirmed")


@dataclass
class RoutingContext:
    meters: dict[str, Meter]
    providers: Mapping[str, tuple[bool, str]]  # provider id → (enabled, health)
    institution_providers: Mapping[str, AbstractSet[str]]
    preferences: dict[tuple[str, str], list[Preference]]  # (institution, utility) → preferences

    # The institution's providers in order, worked out once per batch rather than once per attempt.
    _allowed: dict[str, list[tuple[str, bool, str]]] = field(default_factory=dict, init=False, repr=False)
    # Routing up to the weighted pick, by everything it reads (`decide_for`): a batch's hundreds of attempts fall
    # into a handful of these, and weighing every provider again for each was a sixth of the lookup handler's time.
    _routes: dict[tuple[str, str, tuple[str, ...], str | None], Decision | Weighed] = field(
        default_factory=dict, init=False, repr=False
    )

    def _own(self, institution_id: str) -> list[tuple[str, bool, str]]:
        own = self._allowed.get(institution_id)
        if own is None:
            allowed = self.institution_providers.get(institution_id, set())
            own = self._allowed[institution_id] = [
                (pid, enabled, health) for pid, (enabled, health) in sorted(self.providers.items()) if pid in allowed
            ]
        return own

    def candidates(self, meter: Meter, institution_id: str) -> list[Candidate]:
        """Only the institution's own providers: a decision never names another institution's."""
        own = self._own(institution_id)
        return [Candidate(pid, on, True, health, meter.status_for(institution_id, pid)) for pid, on, health in own]

    def decide_for(self, attempt_id: uuid.UUID, meter: Meter, institution_id: str) -> Decision:
        """`domain.routing.decide` for this attempt on `meter` by `institution_id`'s rules and providers. What it reads
        besides the attempt id is the key of the cached part: the institution (its providers, as enabled and healthy
        as this batch read them), the meter's utility (the preferences), each of those providers' status for the
        institution, and the institution's meter preference."""
        statuses = tuple(meter.status_for(institution_id, pid) for pid, _, _ in self._own(institution_id))
        preferred = meter.preferred.get(institution_id)
        key = (institution_id, meter.utility_id or "", statuses, preferred)
        found = self._routes.get(key)
        if found is None:
            candidates, prefs = self.candidates(meter, institution_id), self.prefs(meter, institution_id)
            found = self._routes[key] = route(candidates, prefs, preferred)
        return picked(found, attempt_id)

    def prefs(self, meter: Meter, institution_id: str) -> list[Preference]:
        return self.preferences.get((institution_id, meter.utility_id or ""), [])

    def enabled_for(self, institution_id: str) -> list[str]:
        allowed = self.institution_providers.get(institution_id, set())
        return sorted(pid for pid, (on, _) in self.providers.items() if on and pid in allowed)
