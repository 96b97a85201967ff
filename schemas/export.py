"""`ppu contracts export`: JSON Schema for every message, for provider integrators in other languages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.registry import MODELS

EXPORT_DIR = Path(__file__).resolve().parent / "json"
ASYNCAPI_FILE = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema integrators get for a model: what the consumers accept, exactly (workers/inbound.py)."""
    schema = model.model_json_schema(mode="validation")
    schema["$id"] = f"urn:ppu:schema:{model.__name__}"
    type_name = getattr(model, "TYPE", "")
    if type_name:
        schema["properties"]["type"]["const"] = type_name
    return schema


def render() -> dict[str, str]:
    """File name → file text, deterministic so a committed export can be compared byte for byte."""
    return {
        f"{name}.schema.json": json.dumps(schema_of(model), indent=2, sort_keys=True) + "\n"
        for name, model in sorted(MODELS.items())
    }


def write(folder: Path = EXPORT_DIR, asyncapi_file: Path = ASYNCAPI_FILE) -> list[Path]:
    from schemas.asyncapi import render as render_asyncapi

    folder.mkdir(parents=True, exist_ok=True)
    asyncapi_file.parent.mkdir(parents=True, exist_ok=True)
    asyncapi_file.write_text(render_asyncapi())
    written = [asyncapi_file]
    for file_name, text in render().items():
        path = folder / file_name
        path.write_text(text)
        written.append(path)
    return written


def stale(folder: Path = EXPORT_DIR, asyncapi_file: Path = ASYNCAPI_FILE) -> list[str]:
    """Files whose committed text differs from what the models export now (or that should not be there)."""
    from schemas.asyncapi import render as render_asyncapi

    if not asyncapi_file.exists() or asyncapi_file.read_text() != render_asyncapi():
        return [asyncapi_file.name]
    wanted = render()
    present = {p.name for p in folder.glob("*.schema.json")}
    diffs = [n for n, text in wanted.items() if not (folder / n).exists() or (folder / n).read_text() != text]
    return diffs + sorted(present - set(wanted))
