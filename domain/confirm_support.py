"""Who may Confirm support, and what it does (guide: "Confirm support"; docs/tenancy.md).

A command is refused (nothing changes; the result and the audit say why) without a valid proof of who issued it
(an HMAC by the deployment's signing key, domain/command_proof.py), from anyone but a user with the operator or
admin role at the institution it names, or for an unknown meter. A meter the institution already marked stays
marked once ("already_marked"). Otherwise the institution marks the meter for rebroadcast, and every provider
enabled for it that has not confirmed support becomes Unconfirmed for that institution alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.commands import ConfirmSupportRequested

Verdict = Literal["marked", "already_marked", "rejected"]


@dataclass(frozen=True)
class Judged:
    command: ConfirmSupportRequested
    verdict: Verdict
    reason: str | None


def judge(
    commands: list[ConfirmSupportRequested],
    proven: set[str],
    allowed: set[tuple[str, str]],
    known: set[str],
    marked: set[tuple[str, str]],
) -> list[Judged]:
    """`proven`: ids of commands whose proof verified; `allowed`: (institution, user) who may confirm;
    `known`: meters; `marked`: (meter, institution) marks already held. In order: a command marks once."""
    marked = set(marked)
    judged = []
    for c in commands:
        d = c.data
        if str(c.id) not in proven:
            judged.append(Judged(c, "rejected", "the command carries no valid proof of who issued it"))
        elif (d.institution_id, d.operator) not in allowed:
            judged.append(Judged(c, "rejected", f"{d.operator} of {d.institution_id} may not confirm support"))
        elif d.meter_number not in known:
            judged.append(Judged(c, "rejected", f"unknown meter {d.meter_number}"))
        elif (d.meter_number, d.institution_id) in marked:
            judged.append(Judged(c, "already_marked", None))
        else:
            marked.add((d.meter_number, d.institution_id))
            judged.append(Judged(c, "marked", None))
    return judged
