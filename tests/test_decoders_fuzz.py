"""Arbitrary bytes and arbitrary JSON into every decoder: never a crash, always a clear dead-letter reason."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.dead_letters import Failure
from messaging.inbound import decode
from schemas.commands import ConfirmSupportRequested
from schemas.envelope import Envelope
from schemas.lookup import LookupRequested, LookupResponded
from schemas.purchase import PurchaseAttempted

CONSUMED: list[type[Envelope[Any]]] = [PurchaseAttempted, LookupResponded, ConfirmSupportRequested, LookupRequested]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=6),
    max_leaves=30,
)


def record(value: bytes, key: bytes = b"k") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=7,
        timestamp=1,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


def check(outcome: object, model: type[Envelope[Any]]) -> None:
    if isinstance(outcome, Failure):
        assert outcome.stage in {"decode", "validate"} and outcome.error_class and outcome.message
    else:
        assert isinstance(outcome, model)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=2000), which=st.integers(0, len(CONSUMED) - 1))
def test_arbitrary_bytes(raw: bytes, which: int) -> None:
    outcome = decode(record(raw), CONSUMED[which], 64 * 1024)
    check(outcome, CONSUMED[which])
    if not raw.strip().startswith((b"{", b"[")):
        assert isinstance(outcome, Failure)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, which=st.integers(0, len(CONSUMED) - 1))
def test_arbitrary_json(value: object, which: int) -> None:
    outcome = decode(record(json.dumps(value).encode()), CONSUMED[which], 64 * 1024)
    check(outcome, CONSUMED[which])
    assert isinstance(outcome, Failure), "random JSON is never a valid envelope"


@settings(max_examples=200)
@given(data=st.data())
def test_valid_envelopes_with_one_field_broken(data: st.DataObject) -> None:
    import uuid

    from schemas.purchase import PurchaseAttemptedData

    good = PurchaseAttempted.new(
        PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number="0401000001", institution_id="i1"),
        source="t",
        correlationid="c",
    )
    obj = json.loads(good.encode())
    field = data.draw(st.sampled_from(["id", "type", "subject", "time", "schemaversion", "data", "specversion"]))
    obj[field] = data.draw(json_values.filter(lambda v: v != obj[field]))
    outcome = decode(record(json.dumps(obj).encode(), key=b"0401000001"), PurchaseAttempted, 64 * 1024)
    if not isinstance(outcome, Failure):  # still valid: only a new id or an equal time written differently
        assert field in ("id", "time"), f"{field} = {obj[field]!r} was accepted"
        return
    # Refused at validation, naming the broken field: the schema check reports its path ("data: …"); a subject
    # that is still a valid meter number no longer matches the record's key.
    assert outcome.stage == "validate"
    if outcome.error_class == "KeyMismatch":
        assert field == "subject", outcome.message
    else:
        # A check across fields (the subject against the data's meter number) is at the root and names the field.
        at_root = outcome.message.startswith("(root): ") and field in outcome.message
        assert outcome.message.startswith(field) or f"; {field}" in outcome.message or at_root, outcome.message


def test_a_record_keyed_by_another_meter_is_refused() -> None:
    """Per-meter order depends on the key: a valid message about one meter keyed by another is dead-lettered."""
    import uuid

    from schemas.purchase import PurchaseAttemptedData

    good = PurchaseAttempted.new(
        PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number="0401000002", institution_id="i1"),
        source="t",
        correlationid="c",
    )
    assert not isinstance(decode(record(good.encode(), key=b"0401000002"), PurchaseAttempted, 64 * 1024), Failure)
    outcome = decode(record(good.encode(), key=b"0401000001"), PurchaseAttempted, 64 * 1024)
    assert isinstance(outcome, Failure) and (outcome.stage, outcome.error_class) == ("validate", "KeyMismatch")
