"""What the lookup worker does with each purchase attempt (design section 3), for a whole batch at once.

An unknown meter opens a `first_seen` round to every enabled provider; a meter the attempt's institution marked
for rebroadcast opens a `rebroadcast` round to that institution's enabled providers (another institution's mark
waits for that institution's own attempt); a meter with an open round is joined; otherwise the attempt is
decided now among the institution's own providers, and the chosen provider gets a `routine` lookup. Nobody
eligible: blocked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from domain.meters import RoutingContext
from domain.routing import Decision
from schemas.lookup import LookupReason


@dataclass(frozen=True)
class Attempt:
    attempt_id: uuid.UUID
    meter_number: str
    institution_id: str
    event_id: str
    received_at: datetime | None = None  # the purchase service's time of the attempt


@dataclass(frozen=True)
class LookupPlan:
    """Providers to ask about a meter: a round (`first_seen`, `rebroadcast`) that attempts wait on, or a
    `routine` lookup that nobody waits on (it only keeps the chosen provider's answer fresh)."""

    meter_number: str
    reason: LookupReason
    providers: list[str]
    institution_id: str
    correlation_id: str
    causation_id: str | None


@dataclass(frozen=True)
class Decided:
    attempt_id: uuid.UUID
    meter_number: str
    decision: Decision
    causation_id: str | None


@dataclass
class AttemptPlan:
    rounds: dict[str, LookupPlan] = field(default_factory=dict)  # meter → the round this batch opens
    routine: list[LookupPlan] = field(default_factory=list)
    joiners: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (attempt, meter) that wait on a round
    decided: list[Decided] = field(default_factory=list)


def plan_attempts(
    attempts: list[Attempt], ctx: RoutingContext, new_meters: set[str], open_rounds: set[str]
) -> AttemptPlan:
    """`attempts` are the batch's first sightings of each attempt id, in arrival order; `new_meters` the meters
    this batch saw first; `open_rounds` the meters with a round still open."""
    plan = AttemptPlan()
    enabled = sorted(pid for pid, (on, _health) in ctx.providers.items() if on)
    for a in attempts:
        meter = ctx.meters[a.meter_number]
        reason: LookupReason | None = None
        asked = enabled
        if a.meter_number in new_meters:
            reason = "first_seen"
        elif a.institution_id in meter.marked_by:
            reason, asked = "rebroadcast", ctx.enabled_for(a.institution_id)
        if a.meter_number in open_rounds or a.meter_number in plan.rounds:
            plan.joiners.append((a.attempt_id, a.meter_number))
        elif reason is not None and asked:
            plan.rounds[a.meter_number] = LookupPlan(
                a.meter_number, reason, asked, a.institution_id, str(a.attempt_id), a.event_id
            )
            plan.joiners.append((a.attempt_id, a.meter_number))
        else:
            inst = a.institution_id
            d = ctx.decide_for(a.attempt_id, meter, inst)
            plan.decided.append(Decided(a.attempt_id, a.meter_number, d, a.event_id))
            if d.provider_id is not None:
                plan.routine.append(
                    LookupPlan(a.meter_number, "routine", [d.provider_id], inst, str(a.attempt_id), a.event_id)
                )
    return plan
