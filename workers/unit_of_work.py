"""What a handler receives: one batch's unit of work, applied in one PostgreSQL transaction or not at all
(workers/batch_transactions.py runs it). A handler sees only `UnitOfWork`: its connection, clock, `emit`, `reject`
and `write_later`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from kernel.dbconn import Db
from messaging.inbound import Inbound
from schemas.envelope import Encoded, Envelope
from workers.meter_locks import read_meters
from workers.outbox import Outbox


class UnitOfWork:
    """What a handler receives: the transaction's connection and the outbox its events, refusals and the writes
    nothing later reads go to."""

    def __init__(self, conn: Db, topic_prefix: str, now: datetime | None = None) -> None:
        self.conn = conn
        self.outbox = Outbox(topic_prefix)
        self._now = now

    async def now(self) -> datetime:
        """The transaction's clock, as `now()` in its statements (read once if the fence did not bring it)."""
        if self._now is None:
            self._now = await self.conn.fetchval("SELECT now()")
        assert self._now is not None
        return self._now

    def write_later(self, insert: str, *args: object) -> None:
        """`insert` (numbered from $1) runs with the outbox's write at the end, in its round trip: for writes that
        nothing later in the transaction reads (`write_pending` runs them sooner)."""
        self.outbox.write_later(insert, *args)

    async def write_pending(self) -> None:
        await self.outbox.write_pending(self.conn)

    def emit(self, topic_key: str, event: Envelope[Any] | Encoded, **params: str) -> None:
        self.outbox.emit(topic_key, event, **params)

    def reject(self, index: int, reason: str) -> None:
        self.outbox.reject(index, reason)

    async def lock_meters(self, meters: Iterable[str]) -> set[str]:
        """Locks these meters' rows as every writer does first (workers/meter_locks.py); returns the ones that exist."""
        return set(await read_meters(self.conn, meters))


Handler = Callable[[list[Inbound[Any]], UnitOfWork], Awaitable[None]]
