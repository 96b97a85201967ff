"""An attempt id used again for another meter, by two lookup batches at once (two lookup processes: the meters are
different, so their locks do not serialise the batches). The second must wait for the first and refuse its copy,
not store a second attempt and a second decision under the same id."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from kernel.connections import connect
from messaging.inbound import Inbound
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from tests.harness import seed_reference
from workers.lookup import ATTEMPT_LOCK_CLASS, handle_purchase_attempts
from workers.meter_locks import LOCK_AFTER_KEYS
from workers.unit_of_work import UnitOfWork


def _attempt(meter: str, attempt_id: uuid.UUID) -> Inbound[PurchaseAttempted]:
    data = PurchaseAttemptedData(attempt_id=attempt_id, meter_number=meter, institution_id="i1")
    event = PurchaseAttempted.new(data, source="test/purchase-service", correlationid=str(attempt_id))
    return Inbound(event, "purchase_attempts", 0, 0)


async def _handle(conn: asyncpg.Connection, meter: str, attempt_id: uuid.UUID) -> UnitOfWork:
    work = UnitOfWork(conn, "t.")
    await handle_purchase_attempts([_attempt(meter, attempt_id)], work, deadline_seconds=60, budget_seconds=2)
    await work.outbox.flush(conn)  # the writes the handler deferred, as the unit of work's last statement runs them
    return work


async def test_the_same_attempt_id_for_two_meters_in_concurrent_batches_is_stored_once(
    db: asyncpg.Connection, database_url: str
) -> None:
    await seed_reference(db)
    same = uuid.uuid4()
    first, second = await connect(database_url), await connect(database_url)
    try:
        first_tx = first.transaction()
        await first_tx.start()
        await _handle(first, "0401000031", same)  # stored, not committed yet
        second_tx = second.transaction()
        await second_tx.start()
        other = asyncio.ensure_future(_handle(second, "0401000032", same))
        await asyncio.sleep(1.0)
        assert not other.done(), "the second batch went on while the first held the same attempt id"
        await first_tx.commit()
        work = await asyncio.wait_for(other, 10)
        await second_tx.commit()
    finally:
        await first.close()
        await second.close()
    assert [r.index for r in work.outbox.rejected] == [0]
    assert "already used for another meter" in work.outbox.rejected[0].reason
    kept = await db.fetch("SELECT meter_number FROM purchase_attempts WHERE attempt_id = $1", same)
    assert [r["meter_number"] for r in kept] == ["0401000031"]
    assert await db.fetchval("SELECT count(*) FROM routing_decisions WHERE attempt_id = $1", same) <= 1


async def test_the_attempt_locks_are_taken_before_any_meter_lock(db: asyncpg.Connection, database_url: str) -> None:
    """One statement takes both (workers/meter_locks.LOCK_AFTER_KEYS); if it locked a meter before an attempt id,
    a batch holding that id and waiting for that meter would deadlock with it. So, with the meter locked by one
    session and the key by another, the statement must be found waiting on the key (an advisory lock), not on the
    meter's row (the holder's transaction id)."""
    await db.execute("INSERT INTO meters (meter_number) VALUES ('0401000041')")
    meter_holder, key_holder, locker = [await connect(database_url) for _ in range(3)]
    try:
        async with meter_holder.transaction(), key_holder.transaction():
            await meter_holder.execute("SELECT 1 FROM meters WHERE meter_number = '0401000041' FOR UPDATE")
            await key_holder.execute("SELECT pg_advisory_xact_lock($1::int4, 7)", ATTEMPT_LOCK_CLASS)
            pid = locker.get_server_pid()
            waiting = asyncio.ensure_future(locker.fetch(LOCK_AFTER_KEYS, ["0401000041"], [7], ATTEMPT_LOCK_CLASS))
            for _ in range(100):
                row = await db.fetchrow("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", pid)
                if row is not None and row["wait_event_type"] == "Lock":
                    break
                await asyncio.sleep(0.05)
            assert row is not None and (row["wait_event_type"], row["wait_event"]) == ("Lock", "advisory")
            assert not waiting.done()
        assert [r["meter_number"] for r in await asyncio.wait_for(waiting, 10)] == ["0401000041"]
    finally:
        for c in (meter_holder, key_holder, locker):
            await c.close()
