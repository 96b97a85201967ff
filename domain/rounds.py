"""When the attempts waiting on a round are decided, and when a round closes.

An attempt waiting on a round is decided as soon as no answer still awaited could change its decision (see
`routing.settled`). Once it has waited the purchase-time decision budget (PPU_DECISION_BUDGET_SECONDS, 2 s by default:
the purchase service will not wait for ever; counted from the attempt's own time, workers/lookup.py), it is decided
with the best eligible Supported answer so far, if there is one; with none, it waits on, for the next answer or the
round's deadline, whichever comes first. At the deadline it is decided with what is known then, blocked if nobody
supports the meter. The round itself keeps collecting answers until its deadline whatever was decided. A round closes
when every provider asked has answered, or when it expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from domain.attempts import Decided
from domain.meters import RoutingContext
from domain.routing import Decision, decide, settled


@dataclass(frozen=True)
class WaitingAttempt:
    attempt_id: uuid.UUID
    meter_number: str
    institution_id: str
    round_id: uuid.UUID


class Settlement(NamedTuple):
    decided: list[Decided]
    closing: list[uuid.UUID]  # rounds to close


def settle(
    unanswered: dict[uuid.UUID, set[str]],
    waiting: list[WaitingAttempt],
    ctx: RoutingContext,
    expired: bool,
    causation_id: str | None = None,
    over_budget: frozenset[uuid.UUID] = frozenset(),
) -> Settlement:
    """`unanswered`: each open round → the providers that have not answered it yet; `over_budget`: the waiting
    attempts that have waited the decision budget."""
    decided = []
    for w in waiting:
        meter, inst = ctx.meters[w.meter_number], w.institution_id
        args = (w.attempt_id, ctx.candidates(meter, inst), ctx.prefs(meter, inst), meter.preferred.get(inst))
        left = unanswered[w.round_id]
        decision = decide(*args) if expired else settled(*args, unanswered=left)
        if decision is None and w.attempt_id in over_budget:
            best = decide(*args)
            if best.provider_id is not None:
                why = f"{best.reason}; decided at the purchase-time budget, {len(left)} provider(s) yet to answer"
                decision = Decision(best.provider_id, why, best.skipped)
        if decision is not None:
            decided.append(Decided(w.attempt_id, w.meter_number, decision, causation_id))
    closing = [rid for rid, left in unanswered.items() if expired or not left]
    return Settlement(decided, closing)
