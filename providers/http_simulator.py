"""A provider's REST service, simulated: serves the PPU v3 meter lookup with configurable coverage, latency,
error and timeout rates and a "down" switch, answering as the interface does.

Strict (the default): every request is judged by the JSON Schema transcribed from Electrum's own model
(providers/electrum), not by the models the bridge builds its bodies with, and refused the way Electrum's
validation refuses it: 400 FORMAT_ERROR whose detailMessage lists {messageProperty, field, error, invalidValue}."""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import random
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from providers import electrum
from providers.ppu_v3 import PATH, Customer, ErrorDetail, ErrorType, LedgerAmount, MeterLookupResponse, Utility


@dataclass
class SimulatorConfig:
    username: str | None  # None: no authentication asked
    password: str | None
    supports: re.Pattern[str] = re.compile(".*")
    meters: frozenset[str] = frozenset()  # from a CSV file: supported regardless of the pattern
    utility_name: str = "Simulated Utility"
    latency_ms: tuple[float, float] = (5.0, 30.0)  # uniform between the two
    error_rate: float = 0.0  # answers 500
    timeout_rate: float = 0.0  # never answers (holds the request open)
    down: bool = False
    lose_answers: int = 0  # the first N lookups are recorded, then their answers are lost (the call hangs)
    garbage_rate: float = 0.0  # answers 201 with a body that is no PPU v3 answer at all
    institution_id: str = "90000001"  # the simulated provider's own Electrum id, in its thirdPartyIdentifiers entry
    seen: set[str] = field(default_factory=set)
    calls: int = 0  # requests that reached the simulator (tests count them)
    received: list[tuple[str, Any]] = field(default_factory=list)  # (path id, body) of each parsed request
    traceparents: list[str | None] = field(default_factory=list)  # the W3C trace context each request carried
    strict: bool = True  # judge requests by Electrum's constraints (providers/electrum)
    delays: dict[str, float] = field(default_factory=dict)  # meter -> seconds it takes to answer about it
    gates: dict[str, asyncio.Event] = field(default_factory=dict)  # meter -> answered only once the event is set
    refused: int = 0  # requests answered FORMAT_ERROR

    def covers(self, meter_id: str) -> bool:
        return meter_id in self.meters or self.supports.fullmatch(meter_id) is not None


def load_meters_csv(path: Path) -> frozenset[str]:
    with path.open(newline="") as f:
        return frozenset(row[0].strip() for row in csv.reader(f) if row and row[0].strip())


def _error(
    status: int, error_type: ErrorType, message: str, request_id: str | None = None, detail: Any = None
) -> JSONResponse:
    body = ErrorDetail(
        error_type=error_type, error_message=message[:20], id=request_id or "unknown", detail_message=detail
    )
    return JSONResponse(body.model_dump(by_alias=True, mode="json", exclude_none=True), status_code=status)


def _format_error(body: Any, request_id: str) -> JSONResponse | None:
    """What Electrum's bean validation says of a body: one entry per violated constraint."""
    found = electrum.violations("MeterLookupRequest", body)
    if not found:
        return None
    detail = [
        {"messageProperty": "meterLookupRequest", "field": pointer, "error": reason, "invalidValue": _at(body, pointer)}
        for pointer, reason in found
    ]
    return _error(400, "FORMAT_ERROR", "Bad formatting", request_id, detail)


def _at(body: Any, pointer: str) -> Any:
    for part in (p for p in pointer.split("/") if p):
        try:
            body = body[int(part)] if isinstance(body, list) else body[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return body


def create_simulator(config: SimulatorConfig) -> FastAPI:
    app = FastAPI(title="PPU v3 provider simulator", docs_url=None, redoc_url=None)
    app.state.config = config

    def authorised(request: Request) -> bool:
        if config.username is None or config.password is None:
            return True
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, config.username) and secrets.compare_digest(pw, config.password)

    @app.post(PATH.replace("{lookup_id}", "{lookup_id}"))
    async def meter_lookup(lookup_id: str, request: Request) -> Response:
        config.calls += 1
        config.traceparents.append(request.headers.get("traceparent"))
        if not authorised(request):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="ppu"'})
        if config.down:
            return _error(503, "UPSTREAM_UNAVAILABLE", "Provider down")
        await asyncio.sleep(random.uniform(*config.latency_ms) / 1000)
        roll = random.random()
        if roll < config.timeout_rate:
            await asyncio.sleep(600)  # the caller's timeout ends this
        if roll < config.timeout_rate + config.error_rate:
            return _error(500, "GENERAL_ERROR", "Simulated failure")
        try:
            body: Any = await request.json()
        except ValueError as e:
            return _error(400, "FORMAT_ERROR", "Unreadable JSON", lookup_id, str(e)[:300])
        config.received.append((lookup_id, body))
        if config.strict and (refusal := _format_error(body, lookup_id)) is not None:
            config.refused += 1
            return refusal
        if not isinstance(body, dict) or body.get("id") != lookup_id:
            return _error(400, "FORMAT_ERROR", "Path id differs", lookup_id, "the path id differs from the body id")
        if lookup_id in config.seen:
            return _error(400, "DUPLICATE_RECORD", "Duplicate record", lookup_id, "this lookup id was used before")
        config.seen.add(lookup_id)
        if config.lose_answers > 0:
            config.lose_answers -= 1
            await asyncio.sleep(600)  # processed, but the caller's timeout ends this: the answer is lost
        if random.random() < config.garbage_rate:
            return Response(b"<html><body>Service temporarily degraded</body></html>", 201, media_type="text/html")
        meter_id = str((body.get("meter") or {}).get("meterId", ""))
        await asyncio.sleep(config.delays.get(meter_id, 0.0))
        if meter_id in config.gates:
            await config.gates[meter_id].wait()
        if not config.covers(meter_id):
            return _error(400, "UNKNOWN_METER_ID", "Unknown meter", lookup_id, f"meter {meter_id} is not known")
        ours = {"institutionId": config.institution_id, "transactionIdentifier": secrets.token_hex(8)}
        answer: dict[str, Any] = {
            **body,
            "thirdPartyIdentifiers": [*body.get("thirdPartyIdentifiers", []), ours],
            "customer": Customer(first_name="Thandi", last_name="Mokoena", address="12 Main Road").model_dump(
                by_alias=True
            ),
            "utility": Utility(name=config.utility_name[:40], client_id="SIM").model_dump(by_alias=True),
            "minAmount": LedgerAmount(amount=1000, currency="710").model_dump(by_alias=True),
            "maxAmount": LedgerAmount(amount=500000, currency="710").model_dump(by_alias=True),
        }
        if config.strict:  # our own answer keeps the interface too
            answer = MeterLookupResponse.model_validate_json(json.dumps(answer)).model_dump(
                by_alias=True, mode="json", exclude_none=True
            )
        return JSONResponse(answer, status_code=201)

    @app.post("/sim/down")
    async def set_down(on: bool) -> dict[str, bool]:
        """The "down" switch (tests and demos); loopback only, like the simulator itself."""
        config.down = on
        return {"down": config.down}

    return app
