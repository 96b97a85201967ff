"""What a consumer flow is and what it receives: the flow's definition, a decoded message with its place in
the log, and the decoding that turns a record into a message or a reason to dead-letter it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from ppu.dbconn import Db
from schemas.envelope import Envelope
from workers.dead_letters import Failure
from workers.outbox import Outbox

M = TypeVar("M", bound=Envelope[Any])


@dataclass(frozen=True)
class Inbound(Generic[M]):
    event: M
    topic: str
    partition: int
    offset: int


Handler = Callable[[list[Inbound[Any]], Db, Outbox], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerFlow:
    worker: str  # process-facing name, e.g. "lookup"
    group_id: str
    topic_key: str  # the consumed topic's key in topics.yaml
    model: type[Envelope[Any]]
    handler: Handler


# A record with its decoded message; a Failure (not decodable or valid: dead-letter it, once we know the partition
# is ours); or None (already dead-lettered: just advance past it).
Item = tuple[ConsumerRecord[bytes, bytes], Envelope[Any] | Failure | None]
Decoded = tuple[TopicPartition, tuple[ConsumerRecord[bytes, bytes], Envelope[Any]]]


def decode(record: ConsumerRecord[bytes, bytes], model: type[Envelope[Any]], max_bytes: int) -> Envelope[Any] | Failure:
    raw = record.value
    if raw is None:
        return Failure("decode", "EmptyValue", "the record has no value")
    if len(raw) > max_bytes:
        return Failure("decode", "MessageTooLarge", f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return Failure("decode", type(e).__name__, str(e))
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:5])
        return Failure("validate", "ValidationError", detail)
