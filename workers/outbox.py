"""What a handler's transaction publishes: collected here, written to the outbox table in one statement.

Handlers never produce to Kafka: the outbox row commits or rolls back with the state change that caused it,
and the relay publishes it afterwards. Rows are flushed at the end of the handler, after it has locked the
meters it changed, so two transactions that touch one meter write their rows in commit order.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from kernel.dbconn import Db
from kernel.topics import topic
from schemas.envelope import Encoded, Envelope

Row = tuple[str, str, bytes, list[list[str]] | None]  # topic, key, value, headers other than the constant ones


@functools.lru_cache(maxsize=1024)
def _topic_name(topic_key: str, prefix: str, params: tuple[tuple[str, str], ...]) -> str:
    """A topic's name, worked out once per (topic, prefix, provider) rather than once per event."""
    return topic(topic_key).name(prefix, **dict(params))


@dataclass
class Rejection:
    index: int  # position in the batch handed to the handler
    reason: str


@dataclass
class Outbox:
    topic_prefix: str
    rows: list[Row] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Tracing on: the W3C headers of the span that handled each inbound event, by event id. An event emitted
    # because of one (its causation id) carries them on (kernel/tracing.py).
    traced: dict[str, dict[str, str]] = field(default_factory=dict)

    def emit(self, topic_key: str, event: Envelope[Any] | Encoded, **params: str) -> None:
        """Queue `event` (a model, or one already encoded: `Envelope.new_encoded`) for the topic named `topic_key`
        in topics.yaml, keyed by its meter number."""
        name = _topic_name(topic_key, self.topic_prefix, tuple(sorted(params.items())))
        trace = self.traced.get(event.causationid or "") if self.traced else None
        extra = [[k, v] for k, v in trace.items()] if trace else None
        value = event.value if isinstance(event, Encoded) else event.encode()
        self.rows.append((name, event.subject, value, extra))

    def reject(self, index: int, reason: str) -> None:
        """The message at `index` cannot be applied; it goes to the dead-letter topic, stage `apply`."""
        self.rejected.append(Rejection(index, reason))

    async def flush(self, conn: Db, then: str | None = None, *args: object) -> None:
        """Writes the queued rows. `then`: a statement (numbered from $1, with `args`) run in the same round trip."""
        if not self.rows:
            if then is not None:
                await conn.execute(then, *args)
            return
        names, keys, values, extras = zip(*self.rows, strict=True)
        n = len(args)
        # Only the headers a row adds (trace context); the relay adds the constant ones itself
        # (`workers/outbox_relay.CONSTANT_HEADERS`).
        write = f"""INSERT INTO outbox (topic, key, value, headers)
               SELECT t, k, v, h::jsonb
               FROM unnest(${n + 1}::text[], ${n + 2}::text[], ${n + 3}::bytea[], ${n + 4}::text[]) AS u(t, k, v, h)"""
        await conn.execute(
            write if then is None else f"WITH written AS ({write}) {then}",
            *args,
            list(names),
            list(keys),
            list(values),
            # As JSON text: a list of lists would be read as a second array dimension.
            [json.dumps(e) if e else None for e in extras],
        )
        self.rows.clear()
