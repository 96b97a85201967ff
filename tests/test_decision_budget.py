"""A purchase does not wait for a silent provider: the decision budget (domain/rounds.py), end to end."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from domain.routing import weighted_pick
from kernel.settings import Settings
from operations.tenancy import Tenant
from tests.harness import System, eventually, running, seed_reference

BUDGET = 1.0


def attempt_id_picking(chosen: str, among: list[str]) -> uuid.UUID:
    """An attempt id for which unranked routing among `among` picks `chosen`: with the others' answers still
    awaited, waiting could change the decision, so only the budget ends the wait."""
    return next(
        a for a in (uuid.UUID(int=n) for n in range(1, 1000)) if weighted_pick(a, [(p, 1) for p in among]) == chosen
    )


@pytest.fixture
async def system(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[System]:
    await seed_reference(db)
    slow_rounds = {"round_deadline_seconds": 60.0, "decision_budget_seconds": BUDGET}
    async with running(settings.model_copy(update=slow_rounds)) as s:
        yield s


async def decided(db: asyncpg.Connection, attempt_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record = await eventually(
        lambda: db.fetchrow(
            """SELECT d.outcome, d.provider_id, d.reason, extract(epoch FROM d.decided_at - a.joined_at) AS waited
               FROM routing_decisions d JOIN purchase_attempts a USING (attempt_id) WHERE attempt_id = $1""",
            attempt_id,
        ),
        within=10,  # the round's deadline is 60 s away
        what="a decision well before the round's deadline",
    )
    return row


async def test_a_supporting_answer_sells_at_the_budget_while_a_provider_stays_silent(
    system: System, db: asyncpg.Connection
) -> None:
    attempt = await system.attempt("0401000051", attempt_id=attempt_id_picking("p3", ["p1", "p3"]))
    requests = {p: (await system.requests(p, 1))[0] for p in ("p1", "p2", "p3")}
    await system.respond(requests["p1"], "supported")
    await system.respond(requests["p2"], "not_supported")
    d = await decided(db, attempt.data.attempt_id)
    assert (d["outcome"], d["provider_id"]) == ("routed", "p1")
    assert "purchase-time budget" in d["reason"] and d["waited"] >= BUDGET, "not before the budget: p3 could win"
    round_open = await db.fetchval(
        "SELECT closed_at IS NULL FROM lookup_rounds WHERE round_id = $1", requests["p3"].data.round_id
    )
    assert round_open, "the round keeps collecting answers until its deadline"
    view = await Tenant("i1").meter(db, "0401000051")
    assert view is not None and view.open_round is not None, "the meter page shows the open round"
    r = view.open_round
    assert (r.reason, r.answered, r.pending, r.waiting_attempts) == ("first_seen", ["p1", "p2"], ["p3"], 0)
    other = await Tenant("i2").meter(db, "0401000051")  # i2 has p1 only: it sees nothing of p2 and p3
    assert other is not None and other.open_round is not None and other.open_round.pending == []
    await system.respond(requests["p3"], "supported")
    await eventually(
        lambda: db.fetchval(
            "SELECT closed_at IS NOT NULL FROM lookup_rounds WHERE round_id = $1", requests["p3"].data.round_id
        ),
        what="the round to close on the last answer",
    )
    assert (
        await db.fetchval("SELECT status FROM meter_support WHERE meter_number = '0401000051' AND provider_id = 'p3'")
        == "supported"
    )
    assert await db.fetchval("SELECT count(*) FROM routing_decisions") == 1, "decided once"


async def test_past_the_budget_with_no_supporter_the_first_supporting_answer_decides(
    system: System, db: asyncpg.Connection
) -> None:
    attempt = await system.attempt("0401000052", attempt_id=attempt_id_picking("p1", ["p1", "p2", "p3"]))
    requests = {p: (await system.requests(p, 1))[0] for p in ("p1", "p2", "p3")}
    await eventually(
        lambda: db.fetchval(
            "SELECT joined_at <= now() - make_interval(secs => $2) FROM purchase_attempts WHERE attempt_id = $1",
            attempt.data.attempt_id,
            BUDGET + 0.5,
        ),
        what="the budget to pass with nobody supporting the meter",
    )
    assert await db.fetchval("SELECT count(*) FROM routing_decisions") == 0, "no supporter: not blocked early"
    await system.respond(requests["p2"], "supported")
    d = await decided(db, attempt.data.attempt_id)
    assert (d["outcome"], d["provider_id"]) == ("routed", "p2")


async def test_the_budget_counts_from_the_purchase_s_own_time_never_from_the_future_nor_far_back(
    system: System, db: asyncpg.Connection
) -> None:
    """The purchase service's timeout starts at its send: a wait's budget starts at the attempt's time, not when the
    worker read it; clamped to the database's now (a sender's clock ahead) and to half a budget back (the sweeper's
    watermark, workers/lookup.py). `recorded_at` is the storing transaction's now."""
    # The attempt's time, from now; the one within range last, when the worker is past its start (its group join).
    shifts = {"0401000062": 30.0, "0401000063": -10.0, "0401000061": -0.2}
    for meter, shift in shifts.items():
        e = await system.attempt(meter, send=False)
        shifted = e.model_copy(update={"time": e.time + timedelta(seconds=shift)})
        await system.send("purchase_attempts", shifted)
        row = await eventually(
            functools.partial(
                db.fetchrow,
                """SELECT joined_at = received_at AS own_time, joined_at = recorded_at AS now,
                          extract(epoch FROM recorded_at - joined_at)::float8 AS back
                   FROM purchase_attempts WHERE attempt_id = $1""",
                e.data.attempt_id,
            ),
            what=f"the attempt on {meter} stored",
        )
        if shift == -0.2:
            assert row["own_time"], "within half a budget: the attempt's own time"
        elif shift > 0:
            assert row["now"] and not row["own_time"], "a time ahead of the database's: now"
        else:
            assert row["back"] == pytest.approx(BUDGET / 2), "far back: half a budget before now"
