"""What a consumer receives: a decoded message with its place in the log, and the decoding that turns a record
into a message or a reason to dead-letter it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

import jsonschema_rs
from aiokafka import ConsumerRecord, TopicPartition
from pydantic import ValidationError
from pydantic_core import from_json

from messaging.dead_letters import Failure
from schemas.envelope import Envelope, describe
from schemas.export import schema_of

M = TypeVar("M", bound=Envelope[Any])


@dataclass(frozen=True)
class Inbound(Generic[M]):
    event: M
    topic: str
    partition: int
    offset: int


# A record with its decoded message; a Failure (not decodable or valid: dead-letter it, once we know the partition
# is ours); or None (already dead-lettered: just advance past it).
Item = tuple[ConsumerRecord[bytes, bytes], Envelope[Any] | Failure | None]
Decoded = tuple[TopicPartition, tuple[ConsumerRecord[bytes, bytes], Envelope[Any]]]


@cache
def _law(model: type[Envelope[Any]]) -> jsonschema_rs.Validator:
    """The exported JSON Schema of the model: a message is valid exactly when it passes this (no type coercion)."""
    return jsonschema_rs.validator_for(schema_of(model), validate_formats=True)


def decode(record: ConsumerRecord[bytes, bytes], model: type[Envelope[Any]], max_bytes: int) -> Envelope[Any] | Failure:
    """The message, or why it goes to the dead-letter topic: too large, not JSON, not what the exported JSON Schema
    accepts, or keyed by something other than its subject (the meter number: per-meter order depends on it)."""
    raw = record.value
    if raw is None:
        return Failure("decode", "EmptyValue", "the record has no value")
    if len(raw) > max_bytes:
        return Failure("decode", "MessageTooLarge", f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        # pydantic's own parser (jiter): a third of the time `json.loads` takes on a message. NaN and Infinity parse,
        # as with `json.loads`, and are refused by the schema check, naming their field.
        obj = from_json(raw)
    except ValueError as e:
        return Failure("decode", "NotJson", str(e))
    law = _law(model)
    if not law.is_valid(obj):  # the reasons are gathered only for what is refused
        refused = [f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}" for e in law.iter_errors(obj)]
        return Failure("validate", "SchemaViolation", "; ".join(refused[:5])[:1000])
    try:
        event = model.model_validate(obj)
    except ValidationError as e:
        return Failure("validate", "ValidationError", describe(e))
    if record.key != event.subject.encode():
        key = record.key.decode("utf-8", "replace")[:40] if record.key is not None else None
        return Failure("validate", "KeyMismatch", f"the record key {key!r} is not the subject {event.subject}")
    return event
