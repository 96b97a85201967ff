"""Electrum's PPU v3 constraints as JSON Schema (`meter-lookup.schema.json`), written from the interface's Java
annotations and independent of our pydantic models: the simulator's strict mode judges bodies with it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

SCHEMA_FILE = Path(__file__).resolve().parent / "meter-lookup.schema.json"


@cache
def _document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return doc


@cache
def validator(definition: str) -> jsonschema_rs.Validator:
    """A validator for one body type: MeterLookupRequest, MeterLookupResponse or ErrorDetail."""
    doc = _document()
    if definition not in doc["$defs"]:
        raise KeyError(definition)
    return jsonschema_rs.validator_for({**doc, "$ref": f"#/$defs/{definition}"}, validate_formats=True)


def violations(definition: str, body: Any) -> list[tuple[str, str]]:
    """Each refused field as (JSON pointer, reason), the way a FORMAT_ERROR's detailMessage lists them."""
    return [("/" + "/".join(map(str, e.instance_path)), e.message) for e in validator(definition).iter_errors(body)]
