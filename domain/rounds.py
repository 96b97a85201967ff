"""When the attempts waiting on a round are decided, and when a round closes.

An attempt waiting on a round is decided as soon as no answer still awaited could change its decision (see
`routing.settled`), and at the latest when the round expires, with what is known then. A round closes when
every provider asked has answered, or when it expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from domain.attempts import Decided
from domain.meters import RoutingContext
from domain.routing import decide, settled


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
) -> Settlement:
    """`unanswered`: each open round → the providers that have not answered it yet."""
    decided = []
    for w in waiting:
        meter, inst = ctx.meters[w.meter_number], w.institution_id
        args = (w.attempt_id, ctx.candidates(meter, inst), ctx.prefs(meter, inst), meter.preferred.get(inst))
        decision = decide(*args) if expired else settled(*args, unanswered=unanswered[w.round_id])
        if decision is not None:
            decided.append(Decided(w.attempt_id, w.meter_number, decision, causation_id))
    closing = [rid for rid, left in unanswered.items() if expired or not left]
    return Settlement(decided, closing)
