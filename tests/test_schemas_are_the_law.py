"""The exported JSON Schemas are the law: for every message type, what the schema accepts the consumers accept,
and what it refuses they dead-letter. Instances come from the schemas themselves (tests/schema_strategies.py)
and are judged by an independent validator (the `jsonschema` package), not by our models."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from messaging.dead_letters import Failure
from messaging.inbound import decode
from schemas.envelope import Envelope
from schemas.export import schema_of
from schemas.registry import EVENTS
from tests.schema_strategies import instances

CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
CONSUMED = ["PurchaseAttempted", "LookupRequested", "LookupResponded", "ConfirmSupportRequested"]
WRONG_VALUES = [17, -1, 1.5, "10000", "", True, False, None, [], {}, "x" * 300]


def _record(obj: Any, key: bytes | None) -> ConsumerRecord[bytes, bytes]:
    value = json.dumps(obj).encode()
    return ConsumerRecord("t", 0, 0, 0, 0, key, value, None, len(key or b""), len(value), [])


def _schema_accepts(schema: dict[str, Any], obj: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(schema, format_checker=CHECKER).is_valid(obj))


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(obj)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_what_the_schema_accepts_the_consumer_accepts(name: str) -> None:
    model: type[Envelope[Any]] = EVENTS[name]
    schema = schema_of(model)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(schema))
    def accepted(obj: dict[str, Any]) -> None:
        assert _schema_accepts(schema, obj)
        decoded = decode(_record(obj, obj["subject"].encode()), model, 1 << 20)
        assert not isinstance(decoded, Failure), (decoded, obj)

    accepted()


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_what_the_schema_refuses_the_consumer_dead_letters(name: str) -> None:
    model: type[Envelope[Any]] = EVENTS[name]
    schema = schema_of(model)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(schema), st.data())
    def refused(obj: dict[str, Any], data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(_leaves(obj)))
        bad = _set(obj, path, data.draw(st.sampled_from(WRONG_VALUES))) if path else data.draw(st.just(17))
        assume(not _schema_accepts(schema, bad))
        key = obj["subject"].encode()
        decoded = decode(_record(bad, key), model, 1 << 20)
        assert isinstance(decoded, Failure) and decoded.stage == "validate", (path, bad)

    refused()


@pytest.mark.parametrize("name", CONSUMED)
def test_a_key_other_than_the_meter_number_is_dead_lettered(name: str) -> None:
    model: type[Envelope[Any]] = EVENTS[name]

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(schema_of(model)), st.one_of(st.none(), st.binary(max_size=30)))
    def mismatched(obj: dict[str, Any], key: bytes | None) -> None:
        assume(key != obj["subject"].encode())
        decoded = decode(_record(obj, key), model, 1 << 20)
        assert isinstance(decoded, Failure) and decoded.error_class == "KeyMismatch"

    mismatched()


def test_the_values_the_issue_names_are_refused() -> None:
    """`time: 17`, `amount.amount: "10000"` and `schemaversion: true` once passed the consumers."""
    base = {
        "specversion": "1.0",
        "id": "3f1c4b0e-8d7a-4c2b-9e1f-0a2b3c4d5e6f",
        "source": "purchase-service",
        "type": "ppu.purchase.attempted",
        "subject": "0401000001",
        "time": "2026-11-28T10:00:00Z",
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "correlationid": "c",
        "data": {
            "attempt_id": "9d2c4b0e-8d7a-4c2b-9e1f-0a2b3c4d5e6f",
            "meter_number": "0401000001",
            "institution_id": "demo-bank",
            "amount": {"amount": 10000, "currency": "710"},
        },
    }
    model = EVENTS["PurchaseAttempted"]
    assert not isinstance(decode(_record(base, b"0401000001"), model, 1 << 20), Failure)
    for path, value in ((("time",), 17), (("data", "amount", "amount"), "10000"), (("schemaversion",), True)):
        decoded = decode(_record(_set(base, path, value), b"0401000001"), model, 1 << 20)
        assert isinstance(decoded, Failure) and decoded.error_class == "SchemaViolation", path
