"""What a handler's transaction publishes: collected here, written to the outbox table in one statement.

Handlers never produce to Kafka: the outbox row commits or rolls back with the state change that caused it,
and the relay publishes it afterwards. Rows are flushed at the end of the handler, after it has locked the
meters it changed, so two transactions that touch one meter write their rows in commit order. A transaction writes
one row per lane its messages fall in, holding them packed in order (db/migrations/0018_outbox_rows_per_lane.sql).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import msgpack

from kernel.dbconn import Db
from kernel.topics import topic
from schemas.envelope import Encoded, Envelope

Row = tuple[str, str, bytes, list[list[str]] | None]  # topic, key, value, headers other than the constant ones
LANES = 16  # the relays share the outbox by lane (workers/relay_lanes.py)
_PARAM = re.compile(r"\$(\d+)")


def _shifted(sql: str, by: int) -> str:
    """`sql` with its parameters $1, $2, ... renumbered from $(1 + by): statements joined into one share one list.
    (Our statements hold no other `$`: no dollar quoting, no `$` in literals.)"""
    return _PARAM.sub(lambda m: f"${int(m.group(1)) + by}", sql) if by else sql


@functools.lru_cache(maxsize=1024)
def _topic_name(topic_key: str, prefix: str, params: tuple[tuple[str, str], ...]) -> str:
    """A topic's name, worked out once per (topic, prefix, provider) rather than once per event."""
    return topic(topic_key).name(prefix, **dict(params))


@functools.lru_cache(maxsize=1 << 16)
def lane_of(key: str) -> int:
    """The key's lane: the first byte of its MD5, as migration 0018 computes it in SQL (a spread, not a secret)."""
    return hashlib.md5(key.encode(), usedforsecurity=False).digest()[0] & (LANES - 1)


def packed(rows: list[Row]) -> bytes:
    """A lane's messages, in order, as one outbox row holds them (`unpacked` reads them back).

    MessagePack rather than a framing of our own: its C codec packs a message in well under a microsecond, and
    keeps bytes (the value) apart from text (topic, key) without escaping."""
    packed: bytes = msgpack.packb(rows, use_bin_type=True)
    return packed


def unpacked(batch: bytes) -> list[Row]:
    return [(t, k, v, h) for t, k, v, h in msgpack.unpackb(batch, raw=False, use_list=True)]


@dataclass
class Rejection:
    index: int  # position in the batch handed to the handler
    reason: str


@dataclass
class Outbox:
    topic_prefix: str
    rows: list[Row] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Writes that nothing later in the transaction reads (an INSERT each, numbered from $1, with its arguments): sent
    # with the outbox's own write in one round trip, as data-modifying CTEs, instead of one round trip each.
    later: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
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

    def write_later(self, insert: str, *args: object) -> None:
        """Queues `insert` (one INSERT, without a WITH of its own) to run with the flush, or at `write_pending`."""
        self.later.append((insert, args))

    async def write_pending(self, conn: Db) -> None:
        """Runs the queued writes now: for a handler that reads what it wrote (in one round trip)."""
        if self.later:
            sql, args = self._joined([])
            await conn.execute(sql, *args)

    def _joined(self, then: list[tuple[str, tuple[object, ...]]]) -> tuple[str, list[object]]:
        """The queued writes and `then` (whose last one is the statement's body) as one statement and its arguments."""
        parts, args = [*self.later, *then], list[object]()
        self.later = []
        texts: list[str] = []
        for sql, part_args in parts:
            texts.append(_shifted(sql, len(args)))
            args.extend(part_args)
        if len(texts) == 1:
            return texts[0], args
        ctes = ", ".join(f"w{i} AS ({t})" for i, t in enumerate(texts[:-1]))
        return f"WITH {ctes} {texts[-1]}", args

    async def flush(self, conn: Db, then: str | None = None, *args: object) -> None:
        """Writes the queued writes and rows. `then`: a statement (numbered from $1, with `args`) run in the same
        round trip."""
        parts: list[tuple[str, tuple[object, ...]]] = []
        if self.rows:
            # Only the headers a row adds (trace context); the relay adds the constant ones itself
            # (`workers/outbox_relay.CONSTANT_HEADERS`).
            lanes: dict[int, list[Row]] = {}
            for row in self.rows:
                lanes.setdefault(lane_of(row[1]), []).append(row)
            write = """INSERT INTO outbox (lane, n, batch)
               SELECT * FROM unnest($1::smallint[], $2::int[], $3::bytea[])"""
            parts.append((write, (list(lanes), [len(r) for r in lanes.values()], [packed(r) for r in lanes.values()])))
            self.rows.clear()
        if then is not None:
            parts.append((then, args))
        if parts or self.later:
            sql, joined_args = self._joined(parts)
            await conn.execute(sql, *joined_args)
