"""A provider's REST service, simulated: serves the PPU v3 meter lookup with configurable coverage, latency,
error and timeout rates and a "down" switch, answering as the interface does."""

from __future__ import annotations

import asyncio
import base64
import csv
import random
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from providers.ppu_v3 import PATH, Customer, ErrorDetail, MeterLookupRequest, MeterLookupResponse, Utility


@dataclass
class SimulatorConfig:
    username: str
    password: str
    supports: re.Pattern[str] = re.compile(".*")
    meters: frozenset[str] = frozenset()  # from a CSV file: supported regardless of the pattern
    utility_name: str = "Simulated Utility"
    latency_ms: tuple[float, float] = (5.0, 30.0)  # uniform between the two
    error_rate: float = 0.0  # answers 500
    timeout_rate: float = 0.0  # never answers (holds the request open)
    down: bool = False
    lose_answers: int = 0  # the first N lookups are recorded, then their answers are lost (the call hangs)
    garbage_rate: float = 0.0  # answers 201 with a body that is no PPU v3 answer at all
    seen: set[str] = field(default_factory=set)
    calls: int = 0  # requests that reached the simulator (tests count them)
    received: list[tuple[str, Any]] = field(default_factory=list)  # (path id, body) of each parsed request

    def covers(self, meter_id: str) -> bool:
        return meter_id in self.meters or self.supports.fullmatch(meter_id) is not None


def load_meters_csv(path: Path) -> frozenset[str]:
    with path.open(newline="") as f:
        return frozenset(row[0].strip() for row in csv.reader(f) if row and row[0].strip())


def _error(status: int, error_type: str, message: str, request_id: str | None = None) -> JSONResponse:
    detail = ErrorDetail(error_type=error_type, error_message=message, request_type="METER_LOOKUP", id=request_id)
    return JSONResponse(detail.model_dump(by_alias=True, exclude_none=True), status_code=status)


def create_simulator(config: SimulatorConfig) -> FastAPI:
    app = FastAPI(title="PPU v3 provider simulator", docs_url=None, redoc_url=None)
    app.state.config = config

    def authorised(request: Request) -> bool:
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
        if not authorised(request):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="ppu"'})
        if config.down:
            return _error(503, "SERVICE_UNAVAILABLE", "the provider is down")
        await asyncio.sleep(random.uniform(*config.latency_ms) / 1000)
        roll = random.random()
        if roll < config.timeout_rate:
            await asyncio.sleep(600)  # the caller's timeout ends this
        if roll < config.timeout_rate + config.error_rate:
            return _error(500, "GENERAL_ERROR", "simulated failure")
        try:
            body: Any = await request.json()
            config.received.append((lookup_id, body))
            lookup = MeterLookupRequest.model_validate(body)
        except (ValueError, ValidationError) as e:
            return _error(400, "FORMAT_ERROR", f"invalid request: {str(e)[:300]}")
        if str(lookup.id) != lookup_id:
            return _error(400, "FORMAT_ERROR", "the path id differs from the body id", str(lookup.id))
        if str(lookup.id) in config.seen:
            return _error(400, "DUPLICATE_RECORD", "this lookup id was used before", str(lookup.id))
        config.seen.add(str(lookup.id))
        if config.lose_answers > 0:
            config.lose_answers -= 1
            await asyncio.sleep(600)  # processed, but the caller's timeout ends this: the answer is lost
        if random.random() < config.garbage_rate:
            return Response(b"<html><body>Service temporarily degraded</body></html>", 201, media_type="text/html")
        if not config.covers(lookup.meter.meter_id):
            return _error(400, "UNKNOWN_METER_ID", f"meter {lookup.meter.meter_id} is not known", str(lookup.id))
        ours = {"institutionId": lookup.settlement_entity.id, "transactionIdentifier": secrets.token_hex(8)}
        answer = MeterLookupResponse.model_validate(
            {
                **lookup.model_dump(by_alias=True, mode="json"),
                "thirdPartyIdentifiers": [
                    *lookup.model_dump(by_alias=True, mode="json")["thirdPartyIdentifiers"],
                    ours,
                ],
                "customer": Customer(first_name="Thandi", last_name="Mokoena", address="12 Main Road"),
                "utility": Utility(name=config.utility_name, client_id="SIM"),
            }
        )
        return JSONResponse(answer.model_dump(by_alias=True, mode="json", exclude_none=True), status_code=201)

    @app.post("/sim/down")
    async def set_down(on: bool) -> dict[str, bool]:
        """The "down" switch (tests and demos); loopback only, like the simulator itself."""
        config.down = on
        return {"down": config.down}

    return app
