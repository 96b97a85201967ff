"""The guide's story, step by step, on the pure domain: no broker, no database, a few milliseconds in all.

First sight, mixed answers, a silent provider, blocked, Confirm support, rebroadcast, unblock, late and stale
answers, and provider health. The integration suite runs the same story through Kafka and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from domain import answers
from domain.attempts import Attempt, plan_attempts
from domain.command_proof import sign
from domain.confirm_support import judge
from domain.health import Health
from domain.meters import Meter, RoutingContext
from domain.rounds import WaitingAttempt, settle
from domain.routing import Preference
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.lookup import LookupRespondedData, UtilityInfo

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ROUND = uuid.UUID(int=7)
KEY = "a signing key for the story"


def attempt(n: int, meter: str = "0401000001", inst: str = "bank-a") -> Attempt:
    return Attempt(uuid.UUID(int=n), meter, inst, f"event-{n}")


def context(*meters: Meter, prefs: list[Preference] | None = None, down: str | None = None) -> RoutingContext:
    providers = {p: (True, "DOWN" if p == down else "HEALTHY") for p in ("p1", "p2", "p3")}
    institutions = {"bank-a": {"p1", "p2", "p3"}, "bank-b": {"p1", "p2"}}
    preferences = {("bank-a", "u1"): prefs or []}
    return RoutingContext({m.meter_number: m for m in meters}, providers, institutions, preferences)


def meter(support: dict[str, str] | None = None, **kw: object) -> Meter:
    return Meter("0401000001", "u1", False, support or {}, **kw)  # type: ignore[arg-type]


def waiting(n: int, inst: str = "bank-a") -> WaitingAttempt:
    return WaitingAttempt(uuid.UUID(int=n), "0401000001", inst, ROUND)


# 1. First sight: an unknown meter opens a round to every enabled provider; the batch's other attempts join it.
def test_first_sight_opens_one_round_to_every_provider_and_the_rest_join() -> None:
    plan = plan_attempts([attempt(1), attempt(2)], context(meter()), {"0401000001"}, set())
    (r,) = plan.rounds.values()
    assert (r.reason, r.providers, r.correlation_id) == ("first_seen", ["p1", "p2", "p3"], str(uuid.UUID(int=1)))
    assert [a for a, _ in plan.joiners] == [uuid.UUID(int=1), uuid.UUID(int=2)]
    assert plan.decided == [] and plan.routine == []


def test_a_meter_with_an_open_round_is_joined_not_asked_again() -> None:
    plan = plan_attempts([attempt(1)], context(meter()), set(), {"0401000001"})
    assert plan.rounds == {} and plan.joiners == [(uuid.UUID(int=1), "0401000001")]


# 2. Mixed answers: the attempt is decided as soon as no awaited answer could change the decision.
def test_mixed_answers_decide_once_the_best_possible_provider_has_answered() -> None:
    prefs = [Preference("p1", "ranked", 1), Preference("p2", "ranked", 2)]
    ctx = context(meter({"p2": "supported", "p3": "not_supported"}), prefs=prefs)
    still_waiting = settle({ROUND: {"p1"}}, [waiting(1)], ctx, expired=False)
    assert still_waiting.decided == [] and still_waiting.closing == []  # p1 (rank 1) could still say supported
    ctx = context(meter({"p1": "not_supported", "p2": "supported", "p3": "not_supported"}), prefs=prefs)
    done = settle({ROUND: set()}, [waiting(1)], ctx, expired=False)
    assert [d.decision.provider_id for d in done.decided] == ["p2"] and done.closing == [ROUND]


# 3. A silent provider: at the deadline the attempt is decided with what is known; the round closes.
def test_a_silent_provider_leaves_the_decision_to_the_deadline() -> None:
    ctx = context(meter({"p2": "supported"}), prefs=[Preference("p1", "ranked", 1), Preference("p2", "ranked", 2)])
    assert settle({ROUND: {"p1"}}, [waiting(1)], ctx, expired=False).decided == []
    expired = settle({ROUND: {"p1"}}, [waiting(1)], ctx, expired=True)
    assert [d.decision.provider_id for d in expired.decided] == ["p2"] and expired.closing == [ROUND]


# 4. Blocked: nobody supports the meter; the decision names no provider and says why each was skipped.
def test_nobody_supports_the_meter_so_the_attempt_is_blocked() -> None:
    ctx = context(meter({"p1": "not_supported", "p2": "not_supported"}))
    (d,) = settle({ROUND: {"p3"}}, [waiting(1)], ctx, expired=True).decided
    assert d.decision.provider_id is None
    assert dict(d.decision.skipped) == {"p1": "not supported", "p2": "not supported", "p3": "support unconfirmed"}


def test_a_provider_the_institution_does_not_use_holds_up_none_of_its_purchases() -> None:
    # bank-b sells through p1 and p2 only: once both say no, p3's silence cannot change its decision.
    ctx = context(meter({"p1": "not_supported", "p2": "not_supported"}))
    (d,) = settle({ROUND: {"p3"}}, [waiting(1, inst="bank-b")], ctx, expired=False).decided
    assert d.decision.provider_id is None
    # bank-a uses p3: its purchase waits for p3's answer (or the deadline).
    assert settle({ROUND: {"p3"}}, [waiting(2)], ctx, expired=False).decided == []


def test_a_known_meter_is_routed_at_once_and_its_provider_gets_a_routine_lookup() -> None:
    plan = plan_attempts([attempt(1)], context(meter({"p2": "supported"})), set(), set())
    assert [d.decision.provider_id for d in plan.decided] == ["p2"]
    assert [(r.reason, r.providers) for r in plan.routine] == [("routine", ["p2"])] and plan.rounds == {}


# 5. Confirm support: only a proven command from an operator of the institution marks the meter, once.
def command(
    n: int, operator: str = "olivia", inst: str = "bank-a", meter: str = "0401000001"
) -> ConfirmSupportRequested:
    data = ConfirmSupportRequestedData(meter_number=meter, operator=operator, institution_id=inst)
    c = ConfirmSupportRequested.new(data, source="test", correlationid=str(n))
    return sign(c, KEY)


def test_confirm_support_marks_once_and_refuses_what_it_cannot_trust() -> None:
    cmds = [command(1), command(2), command(3, operator="mallory"), command(4, meter="0409999999"), command(5)]
    proven = {str(c.id) for c in cmds[:4]}  # the fifth's proof did not verify
    allowed = {("bank-a", "olivia")}
    verdicts = judge(cmds, proven, allowed, known={"0401000001"}, marked=set())
    assert [(j.verdict, j.reason) for j in verdicts] == [
        ("marked", None),
        ("already_marked", None),
        ("rejected", "mallory of bank-a may not confirm support"),
        ("rejected", "unknown meter 0409999999"),
        ("rejected", "the command carries no valid proof of who issued it"),
    ]


# 6. Rebroadcast: the marking institution's next attempt opens a round to its own providers; another's does not.
def test_a_marked_meter_is_rebroadcast_for_the_institution_that_marked_it_only() -> None:
    m = meter({"p1": "supported"}, marked_by={"bank-b"}, resets={"bank-b": {"p2"}})
    plan = plan_attempts([attempt(1, inst="bank-b"), attempt(2, inst="bank-a")], context(m), set(), set())
    (r,) = plan.rounds.values()
    assert (r.reason, r.providers, r.institution_id) == ("rebroadcast", ["p1", "p2"], "bank-b")
    assert [a for a, _ in plan.joiners] == [uuid.UUID(int=1), uuid.UUID(int=2)]  # bank-a's joins the open round
    assert m.status_for("bank-b", "p2") == "unconfirmed" and m.status_for("bank-a", "p1") == "supported"
    alone = plan_attempts([attempt(3, inst="bank-a")], context(m), set(), set())
    assert alone.rounds == {} and [d.decision.provider_id for d in alone.decided] == ["p1"]


def test_an_institution_never_gets_a_decision_naming_another_institutions_provider() -> None:
    ctx = context(meter({"p3": "supported"}))
    plan = plan_attempts([attempt(1, inst="bank-b")], ctx, set(), set())
    assert [d.decision.provider_id for d in plan.decided] == [None]


# 7. Answers: matched, newest wins, stale ones change nothing, future times are clamped, changes unblock.
def sent(n: int, at: datetime, provider: str = "p1", reason: str = "first_seen") -> answers.SentLookup:
    return answers.SentLookup(uuid.UUID(int=n), provider, "0401000001", at, ROUND, reason, at, "bank-a")


Status = Literal["supported", "not_supported"]


def answer(n: int, status: Status = "supported", utility: str | None = None) -> LookupRespondedData:
    return LookupRespondedData(
        lookup_id=uuid.UUID(int=n),
        provider_id="p1",
        meter_number="0401000001",
        status=status,
        responded_at=T0,
        utility=UtilityInfo(name=utility) if utility else None,
    )


def test_an_answer_must_match_the_lookup_sent() -> None:
    assert answers.mismatch(answer(1), None) == f"unknown lookup id {uuid.UUID(int=1)}"
    assert "was sent to p2" in (answers.mismatch(answer(1), sent(1, T0, provider="p2")) or "")
    assert answers.mismatch(answer(1), sent(1, T0)) is None


def test_the_answer_to_the_lookup_sent_last_wins_whatever_order_they_arrive_in() -> None:
    late_old = ("old", answer(1, "not_supported"), sent(1, T0))
    recheck = ("new", answer(2, "supported"), sent(2, T0 + timedelta(seconds=5)))
    assert answers.newest([recheck, late_old])[("0401000001", "p1")][0] == "new"
    assert answers.newest([late_old, recheck])[("0401000001", "p1")][0] == "new"


def test_a_late_answer_to_an_older_lookup_than_the_recorded_one_is_stale() -> None:
    recorded = answers.Recorded("supported", answered_sent_at=T0 + timedelta(seconds=5))
    assert answers.is_stale(sent(1, T0), recorded)
    assert not answers.is_stale(sent(2, T0 + timedelta(seconds=5)), recorded)
    assert not answers.is_stale(sent(1, T0), None)


def test_a_time_from_the_future_is_clamped_to_receipt() -> None:
    assert answers.clamped(T0 + timedelta(days=365), T0, 30) == T0
    assert answers.clamped(T0 + timedelta(seconds=29), T0, 30) == T0 + timedelta(seconds=29)


def test_a_new_supported_answer_unblocks_a_blocked_meter_and_names_its_utility() -> None:
    change = answers.change(("0401000001", "p1"), "supported", answers.Recorded("not_supported", T0))
    assert change == answers.Change("0401000001", "p1", "not_supported", "supported")
    assert answers.change(("0401000001", "p1"), "supported", answers.Recorded("supported", T0)) is None
    assert answers.to_unblock([change], blocked={"0401000001"}) == {"0401000001": "p1"}
    assert answers.to_unblock([change], blocked=set()) == {}
    refusal = answers.Change("0401000001", "p2", "unconfirmed", "not_supported")
    assert answers.to_unblock([refusal], blocked={"0401000001"}) == {}, "only a Supported answer unblocks"
    named = answers.utilities_named([answer(1, utility="City Power")], unassigned={"0401000001"})
    assert named == {"0401000001": "City Power"} and answers.utility_id("City Power") == "city-power"


# 8. Provider health: the window's figures decide; too few lookups keep the state; a refusal stays news.
def health(due: int, answered: int, stored: str = "HEALTHY", last: bool | None = None, p95: float = 100) -> Health:
    return Health("p1", "P1", True, 5, due, due, answered, due - answered, 50, p95, 99, None, last, stored)


def test_health_states_follow_the_documented_thresholds() -> None:
    assert health(10, 10).state == "HEALTHY"
    assert health(10, 8).state == "DEGRADED"
    assert health(10, 10, p95=6000).state == "DEGRADED"
    assert health(10, 1).state == "DOWN"
    assert health(10, 1, last=True).state == "DEGRADED"  # its latest due lookup was answered: it is back
    assert health(4, 0, stored="DEGRADED").state == "DEGRADED"  # too few to judge
    assert health(10, 10, stored="MISCONFIGURED").state == "MISCONFIGURED"


# 9. The decision budget: a waiting purchase takes the best Supported answer so far once it has waited long enough.
def test_past_the_budget_the_best_supported_answer_so_far_decides() -> None:
    ctx = context(meter({"p2": "supported"}), prefs=[Preference("p1", "ranked", 1), Preference("p2", "ranked", 2)])
    waits = [waiting(1), waiting(2)]
    (d,) = settle({ROUND: {"p1"}}, waits, ctx, expired=False, over_budget=frozenset({uuid.UUID(int=2)})).decided
    assert d.attempt_id == uuid.UUID(int=2) and d.decision.provider_id == "p2"
    assert "purchase-time budget, 1 provider(s) yet to answer" in d.decision.reason
    nobody = context(meter({"p2": "not_supported"}), prefs=[Preference("p1", "ranked", 1)])
    assert (
        settle({ROUND: {"p1"}}, waits, nobody, expired=False, over_budget=frozenset({uuid.UUID(int=1)})).decided == []
    )
