"""Each PPU v3 constraint from both sides (valid at the limit, refused past it), judged twice: by the strict models
the bridge builds its bodies with (providers/ppu_v3.py) and by the JSON Schema written from Electrum's own Java
annotations (providers/electrum), which the simulator's strict mode uses. Both must give the expected answer."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from providers import electrum
from providers import ppu_v3 as v3

REQUEST: dict[str, Any] = {
    "id": str(uuid.uuid4()),
    "time": "2026-11-28T10:00:00.000Z",
    "originator": {
        "institution": {"id": "10000001", "name": "PPU Switch"},
        "terminalId": "PPU00001",
        "merchant": {
            "merchantType": "6012",
            "merchantId": "PPUSWITCH000001",
            "merchantName": {"name": "PPU Switch", "city": "Johannesburg", "region": "GP", "country": "ZA"},
        },
    },
    "client": {"id": "20000101", "name": "Demo Bank"},
    "settlementEntity": {"id": "30000204", "name": "Delta Utilities"},
    "receiver": {"id": "40000302", "name": "Hillcrest Utility"},
    "thirdPartyIdentifiers": [{"institutionId": "10000001", "transactionIdentifier": "abc"}],
    "meter": {"meterId": "0401000100"},
}
RESPONSE: dict[str, Any] = {
    **REQUEST,
    "customer": {"firstName": "Thandi", "lastName": "Mokoena", "address": "12 Main Road"},
    "utility": {"name": "Hillcrest Utility", "clientId": "SIM"},
    "minAmount": {"amount": 1000, "currency": "710"},
}
ERROR: dict[str, Any] = {
    "errorType": "FORMAT_ERROR",
    "errorMessage": "Bad formatting",
    "requestType": "METER_LOOKUP_REQUEST",
    "id": REQUEST["id"],
    "detailMessage": [{"messageProperty": "x", "field": "client.id", "error": "must match", "invalidValue": "ab"}],
}

INSTITUTION_IDS = [
    "originator.institution.id",
    "client.id",
    "settlementEntity.id",
    "receiver.id",
    "thirdPartyIdentifiers.0.institutionId",
]
# (where, valid at the limit, refused past it)
REQUEST_CASES: list[tuple[str, Any, Any]] = [
    *[(p, "12345678901", "123456789012") for p in INSTITUTION_IDS],
    *[(p, "1", "ppu-switch") for p in INSTITUTION_IDS],
    *[(p, "0", "") for p in INSTITUTION_IDS],
    ("client.name", "n" * 40, "n" * 41),
    ("settlementEntity.name", "n" * 40, "n" * 41),
    ("originator.institution.name", "n" * 40, "n" * 41),
    ("originator.terminalId", "T" * 8, "T" * 7),
    ("originator.terminalId", "T" * 8, "T" * 9),
    ("originator.operatorId", "o" * 30, "o" * 31),
    ("originator.channelId", "c" * 50, "c" * 51),
    ("originator.merchant.merchantType", "0000", "601"),
    ("originator.merchant.merchantType", "9999", "60a2"),
    ("originator.merchant.merchantId", "M" * 15, "M" * 14),
    ("originator.merchant.merchantId", "M" * 15, "M" * 16),
    ("originator.merchant.merchantName.name", "n" * 23, "n" * 24),
    ("originator.merchant.merchantName.city", "c" * 13, "c" * 14),
    ("originator.merchant.merchantName.region", "GP", "GAU"),
    ("originator.merchant.merchantName.country", "ZA", "ZAF"),
    ("meter.meterId", "A1" * 10, "A1" * 10 + "2"),
    ("meter.meterId", "0401000100", "0401-000100"),
    ("meter.serviceType", "e" * 12, "e" * 13),
    ("meter.supplyGroupCode", "123456", "12345"),
    ("meter.keyRevisionNum", "1", "12"),
    ("meter.keyRevisionNum", "9", 1),
    ("meter.tariffIndex", "01", "1"),
    ("meter.tokenTechCode", "02", "2a"),
    ("meter.algorithmCode", "07", "007"),
    ("meter.newSupplyGroupCode", "654321", "6543210"),
    ("meter.newKeyRevisionNumber", "2", "x"),
    ("meter.newTariffIndex", "99", "100"),
    ("meter.track2Data", "A" * 30 + "====", "A" * 33),
    ("id", str(uuid.uuid4()), "not-a-uuid"),
    ("time", "2026-11-28T10:00:00+02:00", "2026-11-28T10:00:00"),
    ("time", "2026-11-28T10:00:00Z", "yesterday"),
    ("thirdPartyIdentifiers.0.transactionIdentifier", "t", 17),
]
RESPONSE_CASES: list[tuple[str, Any, Any]] = [
    ("customer.firstName", "f" * 40, "f" * 41),
    ("customer.lastName", "l" * 40, "l" * 41),
    ("customer.address", "a" * 80, "a" * 81),
    ("utility.name", "u" * 40, "u" * 41),
    ("utility.address", "a" * 80, "a" * 81),
    ("utility.vatRegNum", "v" * 10, "v" * 11),
    ("utility.clientId", "c" * 20, "c" * 21),
    ("utility.message", "m" * 80, "m" * 81),
    ("minAmount.currency", "710", "71"),
    ("minAmount.amount", 0, "10000"),
    ("minAmount.ledgerIndicator", "DEBIT", "DEBITS"),
    ("bsstDue", True, "yes"),
]
ERROR_CASES: list[tuple[str, Any, Any]] = [
    ("errorMessage", "e" * 20, "e" * 21),
    ("errorType", "UNKNOWN_METER_ID", "METER_BLOCKED"),
    ("requestType", "METER_LOOKUP_REQUEST", "METER_LOOKUP"),
    ("detailMessage", "a free-form string", None),  # both shapes of detail are valid; None means left out
]


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = out
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def _model_accepts(model: type[v3.Wire], body: dict[str, Any]) -> bool:
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError:
        return False
    return True


def _schema_accepts(definition: str, body: dict[str, Any]) -> bool:
    return not electrum.violations(definition, body)


def _judge(model: type[v3.Wire], definition: str, body: dict[str, Any]) -> tuple[bool, bool]:
    return _model_accepts(model, body), _schema_accepts(definition, body)


def test_the_sample_bodies_are_valid_for_both() -> None:
    assert _judge(v3.MeterLookupRequest, "MeterLookupRequest", REQUEST) == (True, True)
    assert _judge(v3.MeterLookupResponse, "MeterLookupResponse", RESPONSE) == (True, True)
    assert _judge(v3.ErrorDetail, "ErrorDetail", ERROR) == (True, True)


@pytest.mark.parametrize(("path", "valid", "refused"), REQUEST_CASES, ids=[f"{c[0]}={c[2]!r}" for c in REQUEST_CASES])
def test_request_constraint(path: str, valid: Any, refused: Any) -> None:
    assert _judge(v3.MeterLookupRequest, "MeterLookupRequest", _with(REQUEST, path, valid)) == (True, True)
    assert _judge(v3.MeterLookupRequest, "MeterLookupRequest", _with(REQUEST, path, refused)) == (False, False)


@pytest.mark.parametrize(("path", "valid", "refused"), RESPONSE_CASES, ids=[f"{c[0]}={c[2]!r}" for c in RESPONSE_CASES])
def test_response_constraint(path: str, valid: Any, refused: Any) -> None:
    assert _judge(v3.MeterLookupResponse, "MeterLookupResponse", _with(RESPONSE, path, valid)) == (True, True)
    assert _judge(v3.MeterLookupResponse, "MeterLookupResponse", _with(RESPONSE, path, refused)) == (False, False)


@pytest.mark.parametrize(("path", "valid", "refused"), ERROR_CASES[:3], ids=[c[0] for c in ERROR_CASES[:3]])
def test_error_detail_constraint(path: str, valid: Any, refused: Any) -> None:
    assert _judge(v3.ErrorDetail, "ErrorDetail", _with(ERROR, path, valid)) == (True, True)
    assert _judge(v3.ErrorDetail, "ErrorDetail", _with(ERROR, path, refused)) == (False, False)


def test_error_detail_message_takes_every_shape() -> None:
    for detail in ("a free-form string", [{"field": "client.id", "error": "must match"}], {"any": "object"}, None):
        body = _with(ERROR, "detailMessage", detail)
        assert _judge(v3.ErrorDetail, "ErrorDetail", body) == (True, True), detail
        assert v3.ErrorDetailSeen.model_validate_json(json.dumps(body)).detail_message == detail


@pytest.mark.parametrize(
    ("required", "definition", "model", "body"),
    [
        ("client", "MeterLookupRequest", v3.MeterLookupRequest, REQUEST),
        ("originator", "MeterLookupRequest", v3.MeterLookupRequest, REQUEST),
        ("meter", "MeterLookupRequest", v3.MeterLookupRequest, REQUEST),
        ("thirdPartyIdentifiers", "MeterLookupRequest", v3.MeterLookupRequest, REQUEST),
        ("originator.merchant.merchantName", "MeterLookupRequest", v3.MeterLookupRequest, REQUEST),
        ("customer", "MeterLookupResponse", v3.MeterLookupResponse, RESPONSE),
        ("utility", "MeterLookupResponse", v3.MeterLookupResponse, RESPONSE),
        ("errorType", "ErrorDetail", v3.ErrorDetail, ERROR),
        ("id", "ErrorDetail", v3.ErrorDetail, ERROR),
    ],
)
def test_required_fields(required: str, definition: str, model: type[v3.Wire], body: dict[str, Any]) -> None:
    assert _judge(model, definition, _with(body, required, None)) == (False, False)


@pytest.mark.parametrize("optional", ["settlementEntity", "receiver", "originator.operatorId", "meter.tariffIndex"])
def test_optional_fields(optional: str) -> None:
    assert _judge(v3.MeterLookupRequest, "MeterLookupRequest", _with(REQUEST, optional, None)) == (True, True)


def test_names_are_cut_in_one_place_to_fit() -> None:
    assert v3.fit_name("n" * 40) == "n" * 40
    cut = v3.fit_name("n" * 41)
    assert len(cut) == 40 and cut.endswith("…")
    assert len(v3.fit_name("m" * 30, 23)) == 23
