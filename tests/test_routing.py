"""Routing rules (design section 4), every branch, as pure functions."""

from __future__ import annotations

import random
import uuid
from collections import Counter

from domain.meters import Meter, RoutingContext
from domain.routing import Candidate, Kind, Preference, decide, settled, weighted_pick

A = uuid.UUID(int=1)


def cand(
    pid: str, support: str = "supported", enabled: bool = True, inst: bool = True, health: str = "HEALTHY"
) -> Candidate:
    return Candidate(pid, enabled, inst, health, support)


def test_meter_preference_wins_when_eligible() -> None:
    d = decide(A, [cand("p1"), cand("p2")], [Preference("p1", "ranked", 1)], meter_preference="p2")
    assert (d.provider_id, d.reason) == ("p2", "meter-level routing preference")


def test_ineligible_meter_preference_falls_back_to_rank_and_says_why() -> None:
    d = decide(A, [cand("p1"), cand("p2", health="DOWN")], [Preference("p1", "ranked", 1)], meter_preference="p2")
    assert d.provider_id == "p1" and d.reason == "utility preference, rank 1"
    assert ("p2", "provider DOWN") in d.skipped


def test_ranked_in_rank_order_skipping_each_kind_of_ineligible() -> None:
    candidates = [
        cand("p1", enabled=False),
        cand("p2", inst=False),
        cand("p3", health="DOWN"),
        cand("p4", support="not_supported"),
        cand("p5", support="unconfirmed"),
        cand("p6"),
        cand("p7"),
    ]
    prefs = [Preference(p, "ranked", i) for i, p in enumerate(["p1", "p2", "p3", "p4", "p5", "p6", "p7"], 1)]
    d = decide(A, candidates, prefs, None)
    assert d.provider_id == "p6" and d.reason == "utility preference, rank 6"
    assert d.skipped == [
        ("p1", "provider disabled"),
        ("p2", "not enabled for the institution"),
        ("p3", "provider DOWN"),
        ("p4", "not supported"),
        ("p5", "support unconfirmed"),
    ]


def test_degraded_is_still_eligible() -> None:
    assert decide(A, [cand("p1", health="DEGRADED")], [], None).provider_id == "p1"


def test_excluded_never_even_as_meter_preference_or_only_supporter() -> None:
    d = decide(A, [cand("p1"), cand("p2", support="not_supported")], [Preference("p1", "excluded")], "p1")
    assert d.provider_id is None and d.reason == "no eligible provider supports the meter"
    assert ("p1", "excluded by the utility") in d.skipped and ("p2", "not supported") in d.skipped


def test_unranked_after_ranked_weighted_and_deterministic() -> None:
    prefs = [Preference("p1", "ranked", 1), Preference("p2", "unranked", weight=3), Preference("p3", "unranked")]
    candidates = [cand("p1", support="not_supported"), cand("p2"), cand("p3")]
    picks = Counter(decide(uuid.UUID(int=i), candidates, prefs, None).provider_id for i in range(4000))
    assert set(picks) == {"p2", "p3"}
    assert 2.5 < picks["p2"] / picks["p3"] < 3.5, picks  # weights 3:1
    again = decide(uuid.UUID(int=7), candidates, prefs, None)
    assert again == decide(uuid.UUID(int=7), candidates, prefs, None)
    assert again.reason == "utility preference, unranked by weight"


def test_zero_weight_is_never_chosen_and_providers_without_preference_count_as_unranked() -> None:
    prefs = [Preference("p1", "unranked", weight=0)]
    d = decide(A, [cand("p1"), cand("p2")], prefs, None)
    assert d.provider_id == "p2" and ("p1", "weight 0") in d.skipped


def test_nothing_eligible_is_blocked_with_every_reason() -> None:
    d = decide(A, [cand("p1", support="unconfirmed"), cand("p2", inst=False)], [], None)
    assert d.provider_id is None and d.skipped == [
        ("p1", "support unconfirmed"),
        ("p2", "not enabled for the institution"),
    ]


def test_weighted_pick_covers_every_weight() -> None:
    picks = Counter(weighted_pick(uuid.UUID(int=i), [("a", 1), ("b", 1)]) for i in range(1000))
    assert 400 < picks["a"] < 600


def test_settled_waits_while_a_better_provider_may_still_answer() -> None:
    prefs = [Preference("p1", "ranked", 1), Preference("p2", "ranked", 2)]
    waiting = [cand("p1", support="unconfirmed"), cand("p2")]
    assert settled(A, waiting, prefs, None, unanswered={"p1"}) is None
    # p1 said no: p2 is final even though p3 has not answered (it ranks below).
    answered = [cand("p1", support="not_supported"), cand("p2"), cand("p3", support="unconfirmed")]
    prefs3 = [*prefs, Preference("p3", "ranked", 3)]
    d = settled(A, answered, prefs3, None, unanswered={"p3"})
    assert d is not None and d.provider_id == "p2"


def test_settled_never_blocks_early_and_decides_when_everyone_answered() -> None:
    assert (
        settled(
            A, [cand("p1", support="not_supported"), cand("p2", support="unconfirmed")], [], None, unanswered={"p2"}
        )
        is None
    )
    d = settled(A, [cand("p1", support="not_supported")], [], None, unanswered=set())
    assert d is not None and d.provider_id is None


def test_a_misconfigured_provider_is_skipped_like_a_down_one() -> None:
    d = decide(A, [cand("p1", health="MISCONFIGURED"), cand("p2", health="DEGRADED")], [], meter_preference="p1")
    assert d.provider_id == "p2" and ("p1", "provider MISCONFIGURED") in d.skipped


def test_a_batch_routes_each_attempt_as_decide_does_from_its_own_inputs() -> None:
    """A batch caches routing up to the weighted pick by what it reads (domain/meters.RoutingContext.decide_for):
    over meters of every mix of answers, resets and meter preferences, institutions with different providers and
    utilities with every kind of preference, each attempt gets exactly what `decide` makes from its own inputs."""
    rng = random.Random(17)
    pids = [f"p{i}" for i in range(1, 6)]
    providers = {p: (rng.random() > 0.15, rng.choice(["HEALTHY", "HEALTHY", "DEGRADED", "DOWN"])) for p in pids}
    institutions = {"i1": frozenset(pids), "i2": frozenset(pids[:3]), "i3": frozenset(pids[2:])}
    kinds: list[Kind] = ["ranked", "unranked", "excluded"]
    preferences = {
        (i, u): [Preference(p, rng.choice(kinds), rng.randint(1, 3), rng.randint(0, 3)) for p in rng.sample(pids, 3)]
        for i in institutions
        for u in ("u1", "u2")
    }
    statuses = ["supported", "supported", "not_supported", "unconfirmed"]
    meters = {}
    for n in range(300):
        m = Meter(f"m{n}", rng.choice(["u1", "u2", None]), False, {p: rng.choice(statuses) for p in pids})
        for i in rng.sample(sorted(institutions), rng.randint(0, 2)):
            m.resets[i] = set(rng.sample(pids, rng.randint(1, 2)))
        for i in rng.sample(sorted(institutions), rng.randint(0, 1)):
            m.preferred[i] = rng.choice(pids)
        meters[m.meter_number] = m
    ctx = RoutingContext(meters, providers, institutions, preferences)
    routed = 0
    for k in range(3000):
        meter, inst, attempt = (
            meters[f"m{k % 300}"],
            rng.choice(sorted(institutions)),
            uuid.UUID(int=rng.getrandbits(128)),
        )
        fresh = decide(attempt, ctx.candidates(meter, inst), ctx.prefs(meter, inst), meter.preferred.get(inst))
        assert ctx.decide_for(attempt, meter, inst) == fresh
        routed += fresh.provider_id is not None
    assert 0 < routed < 3000, "both routed and blocked attempts were compared"
    assert len(ctx._routes) > 20, "many different routings were cached"
