"""`Envelope.new_encoded`, the hot path's way to write an event without building its envelope model, writes what the
model writes: for any valid data of every event type it is used for (drawn from the published JSON Schemas), the
same bytes but for the id and time it makes, and what the published schema accepts."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import Envelope
from schemas.export import schema_of
from schemas.lookup import LookupRequested
from schemas.meter_events import MeterBlocked, MeterUnblocked, SupportChanged
from schemas.purchase import PurchaseBlocked, PurchaseRouted
from tests.schema_strategies import instances

HOT = [PurchaseRouted, PurchaseBlocked, MeterBlocked, LookupRequested, SupportChanged, MeterUnblocked]
ids = st.text(min_size=1, max_size=100)  # any text: quotes, escapes and non-ASCII are written as JSON


@pytest.mark.parametrize("model", HOT, ids=lambda m: m.__name__)
def test_the_bytes_are_the_models(model: type[Envelope[Any]]) -> None:
    law = jsonschema_rs.validator_for(schema_of(model), validate_formats=True)

    @settings(max_examples=60)
    @given(instances(schema_of(model)), ids, st.one_of(st.none(), ids))
    def check(valid: dict[str, Any], correlationid: str, causationid: str | None) -> None:
        data = model.model_validate(valid).data
        made = model.new_encoded(data, source="ppu/test", correlationid=correlationid, causationid=causationid)
        written = json.loads(made.value)
        assert law.is_valid(written), list(law.iter_errors(written))[:3]
        event = model.model_validate_json(made.value)
        assert made.value == event.encode(), "byte for byte what the model writes, its id and time included"
        assert (made.subject, made.causationid) == (data.meter_number, causationid)
        assert (event.source, event.correlationid, event.type) == ("ppu/test", correlationid, model.TYPE)

    check()


def test_ids_the_envelope_would_refuse_are_refused() -> None:
    data = PurchaseBlocked.model_validate(
        json.loads(
            PurchaseBlocked.new_encoded(
                PurchaseBlocked.model_fields["data"].annotation.model_validate(  # type: ignore[union-attr]
                    {"attempt_id": "01a23568-ede6-7401-8fd1-32b64d5e25a4", "meter_number": "m1", "reason": "r"}
                ),
                source="s",
                correlationid="c",
            ).value
        )
    ).data
    for corr, cause in (("", None), ("x" * 101, None), ("c", "y" * 101)):
        with pytest.raises(ValueError):
            PurchaseBlocked.new_encoded(data, source="s", correlationid=corr, causationid=cause)
