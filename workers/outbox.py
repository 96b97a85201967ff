"""What a handler's transaction publishes: collected here, written to the outbox table in one statement.

Handlers never produce to Kafka: the outbox row commits or rolls back with the state change that caused it,
and the relay publishes it afterwards. Rows are flushed at the end of the handler, after it has locked the
meters it changed, so two transactions that touch one meter write their rows in commit order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel.dbconn import Db
from kernel.topics import topic
from schemas.envelope import CONTENT_TYPE, Envelope

HEADERS = [["content-type", CONTENT_TYPE.decode()]]


@dataclass
class Rejection:
    index: int  # position in the batch handed to the handler
    reason: str


@dataclass
class Outbox:
    topic_prefix: str
    rows: list[tuple[str, str, bytes]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def emit(self, topic_key: str, event: Envelope[Any], **params: str) -> None:
        """Queue `event` for the topic named `topic_key` in topics.yaml, keyed by its meter number."""
        name = topic(topic_key).name(self.topic_prefix, **params)
        self.rows.append((name, event.subject, event.encode()))

    def reject(self, index: int, reason: str) -> None:
        """The message at `index` cannot be applied; it goes to the dead-letter topic, stage `apply`."""
        self.rejected.append(Rejection(index, reason))

    async def flush(self, conn: Db) -> None:
        if not self.rows:
            return
        names, keys, values = zip(*self.rows, strict=True)
        await conn.execute(
            """INSERT INTO outbox (topic, key, value, headers)
               SELECT t, k, v, $4::jsonb FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(t, k, v)""",
            list(names),
            list(keys),
            list(values),
            HEADERS,
        )
        self.rows.clear()
