"""Decisions stored on their attempts' rows (migration 0019): an install's decisions move there, `routing_decisions`
reads them as before, and a row cannot hold half a decision."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from db.migrate import migrate
from tests.harness import installed_before


async def test_an_installs_decisions_move_onto_their_attempts(db: asyncpg.Connection) -> None:
    await installed_before(db, 19)
    routed, blocked, waiting = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await db.execute(
        """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, decided_at)
           VALUES ($1, '0601', 'bank', now(), now() - interval '1 minute'),
                  ($2, '0602', 'bank', now(), now() - interval '2 minutes'),
                  ($3, '0603', 'bank', now(), NULL)""",
        routed,
        blocked,
        waiting,
    )
    await db.execute(
        f"""INSERT INTO routing_decisions (attempt_id, meter_number, outcome, provider_id, reason, skipped, decided_at)
            VALUES ('{routed}', '0601', 'routed', 'pa', 'preferred', '[]', now() - interval '1 minute'),
                   ('{blocked}', '0602', 'blocked', NULL, 'no provider supports the meter',
                    '[{{"provider_id": "pa", "reason": "not supported"}}]', now() - interval '2 minutes')"""
    )
    expected = {
        tuple(r)
        for r in await db.fetch("SELECT attempt_id, outcome, provider_id, reason, skipped::text FROM routing_decisions")
    }

    assert (await migrate(db))[0] == 19  # and any later ones

    assert (
        await db.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'upgraded.routing_decisions'::regclass")
        == "v"
    )
    on_rows = await db.fetch(
        """SELECT attempt_id, outcome, provider_id, reason, skipped::text FROM purchase_attempts
           WHERE outcome IS NOT NULL"""
    )
    assert {tuple(r) for r in on_rows} == expected and len(expected) == 2
    assert {
        tuple(r)
        for r in await db.fetch("SELECT attempt_id, outcome, provider_id, reason, skipped::text FROM routing_decisions")
    } == expected
    assert await db.fetchval("SELECT outcome FROM purchase_attempts WHERE attempt_id = $1", waiting) is None


async def test_a_row_holds_a_whole_decision_or_none(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):  # an outcome on an attempt not decided
        await db.execute(
            """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, outcome, reason,
                                              skipped)
               VALUES (gen_random_uuid(), '0604', 'bank', now(), 'routed', 'preferred', '[]')"""
        )
    with pytest.raises(asyncpg.CheckViolationError):  # an outcome without its reason
        await db.execute(
            """INSERT INTO purchase_attempts (attempt_id, meter_number, institution_id, received_at, decided_at,
                                              outcome, skipped)
               VALUES (gen_random_uuid(), '0604', 'bank', now(), now(), 'routed', '[]')"""
        )
