"""Provider health from the lookups themselves (db/provider_health.py): a silent provider goes DOWN, one that
answers stays HEALTHY, and the figures come from each provider's latest lookups only — the same cost at any load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from db.provider_health import LATEST_PER_PROVIDER, provider_health, refresh_states
from kernel.ids import new_id
from tests.harness import seed_reference


async def _lookups(db: asyncpg.Connection, provider: str, n: int, answered: bool, minutes_ago: float) -> None:
    """`n` lookups sent `minutes_ago`, each in a routine round whose deadline has passed."""
    sent = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    rounds = [new_id() for _ in range(n)]
    await db.copy_records_to_table(
        "lookup_rounds",
        columns=["round_id", "meter_number", "reason", "opened_at", "deadline", "closed_at", "providers_asked"],
        records=[(r, "0701", "routine", sent, sent + timedelta(seconds=1), sent, [provider]) for r in rounds],
    )
    await db.copy_records_to_table(
        "lookups",
        columns=["lookup_id", "round_id", "meter_number", "provider_id", "sent_at", "responded_at", "status"],
        records=[
            (
                new_id(),
                r,
                "0701",
                provider,
                sent,
                sent + timedelta(milliseconds=20) if answered else None,
                "supported" if answered else None,
            )
            for r in rounds
        ],
    )


async def test_a_silent_provider_goes_down_and_one_that_answers_stays_healthy(db: asyncpg.Connection) -> None:
    await seed_reference(db)
    await _lookups(db, "p1", 20, answered=True, minutes_ago=1)
    await _lookups(db, "p2", 20, answered=False, minutes_ago=1)
    _, changes = await refresh_states(db)
    assert changes.get("p2") == ("HEALTHY", "DOWN")
    assert "p1" not in changes
    figures = {h.provider_id: h for h in await provider_health(db, 5)}
    assert (figures["p1"].sent, figures["p1"].answered) == (20, 20)
    assert (figures["p2"].sent, figures["p2"].timeouts) == (20, 20)


async def test_only_each_providers_latest_lookups_count(db: asyncpg.Connection) -> None:
    await seed_reference(db)
    # Older lookups in the window went unanswered; the latest LATEST_PER_PROVIDER were answered: it is back.
    await _lookups(db, "p1", 300, answered=False, minutes_ago=4)
    await _lookups(db, "p1", LATEST_PER_PROVIDER, answered=True, minutes_ago=1)
    figures = {h.provider_id: h for h in await provider_health(db, 5)}
    assert figures["p1"].sent == LATEST_PER_PROVIDER
    assert figures["p1"].answered == LATEST_PER_PROVIDER and figures["p1"].timeouts == 0
    # Lookups older than the window do not count at all.
    await _lookups(db, "p2", 50, answered=False, minutes_ago=30)
    assert {h.provider_id: h for h in await provider_health(db, 5)}["p2"].sent == 0
