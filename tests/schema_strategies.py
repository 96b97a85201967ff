"""Hypothesis strategies from our exported JSON Schemas.

Hand-written on purpose: hypothesis-jsonschema (0.23.1, the last release) fails on the current Hypothesis
("'many' object has no attribute 'more'"), and schemathesis' generator is internal API. Our schemas use a small
subset of JSON Schema (objects, $ref to $defs, anyOf, const/enum, strings with pattern/length/format, integers
with a minimum, arrays), which is all this covers; anything else fails loudly, so a new keyword cannot be
skipped silently.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

KNOWN = {
    "$defs", "$id", "$ref", "anyOf", "const", "default", "description", "enum", "format", "items", "maxLength",
    "minLength", "minimum", "pattern", "properties", "required", "title", "type",
}  # fmt: skip


def _datetime_text() -> st.SearchStrategy[str]:
    offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
    moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets)
    return moments.map(lambda d: d.isoformat().replace("+00:00", "Z"))


def _string(s: dict[str, Any]) -> st.SearchStrategy[str]:
    if s.get("format") == "uuid":
        return st.uuids().map(str)
    if s.get("format") == "date-time":
        return _datetime_text()
    if "pattern" in s:
        return st.from_regex(s["pattern"], fullmatch=True)
    return st.text(min_size=s.get("minLength", 0), max_size=min(s.get("maxLength", 40), 60))


def strategy(s: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    unknown = set(s) - KNOWN
    if unknown:
        raise NotImplementedError(f"schema keywords this generator does not know: {sorted(unknown)}")
    if "$ref" in s:
        return st.deferred(lambda: strategy(root["$defs"][s["$ref"].rsplit("/", 1)[1]], root))
    if "const" in s:
        return st.just(s["const"])
    if "enum" in s:
        return st.sampled_from(s["enum"])
    if "anyOf" in s:
        return st.one_of(*(strategy(option, root) for option in s["anyOf"]))
    kind = s.get("type")
    if kind == "null":
        return st.none()
    if kind == "string":
        return _string(s)
    if kind == "integer":
        return st.integers(min_value=s.get("minimum", -(2**31)), max_value=2**31)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(strategy(s["items"], root), max_size=4)
    if kind == "object":
        return _object(s, root)
    raise NotImplementedError(f"schema type {kind!r}")


def _object(s: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props, required = s.get("properties", {}), set(s.get("required", []))
    fields = {k: strategy(v, root) for k, v in props.items()}
    optional = sorted(set(props) - required)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        chosen = [k for k in optional if draw(st.booleans())]
        out = {k: draw(fields[k]) for k in sorted(required) + chosen}
        if draw(st.booleans()):  # consumers take fields added later, as the schemas allow
            out["x_added_later"] = draw(st.text(max_size=10))
        return out

    return build()


def instances(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid envelopes. The one rule a JSON Schema cannot say, that the subject is the data's meter number (it
    is also the record key), is kept by construction."""

    def tie(obj: dict[str, Any]) -> dict[str, Any]:
        if isinstance(obj.get("data"), dict) and "meter_number" in obj["data"]:
            obj["subject"] = obj["data"]["meter_number"]
        return obj

    return strategy(schema, schema).map(tie)
