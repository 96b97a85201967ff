"""The HTTP bridge against the strict provider simulator, over real HTTP and the real broker and database.

Every body the bridge sends is judged by the JSON Schema written from Electrum's own model (providers/electrum),
not by the models the bridge builds bodies with."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY

from kernel.settings import Settings
from providers import electrum
from providers.http_simulator import SimulatorConfig
from schemas.dead_letter import DeadLetterHeaders
from schemas.lookup import LookupResponded
from tests.bridging import (
    GROUP,
    PASSWORD,
    USER,
    bridge,
    committed_all,
    dlq_topic,
    lookup,
    read,
    responses_topic,
    send_request,
    simulator,
)
from tests.conftest import SWITCH_ELECTRUM_ID
from tests.console_server import serve_app
from tests.harness import ELECTRUM_IDS, System, eventually, running, seed_reference


async def test_bodies_keep_electrum_constraints_and_answers_come_back(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    config = SimulatorConfig(USER, PASSWORD, supports=re.compile(r"04.*"), utility_name="Riverside")
    async with simulator(config) as base, bridge(settings, db, base):
        yes, no = lookup("0401000001", utility="Riverside"), lookup("0999000001", institution=None)
        dup = lookup("0401000002", lookup_id=yes.data.lookup_id)  # a reused lookup id
        await send_request(bridge_system, settings, yes)
        await send_request(bridge_system, settings, no)
        answers = [
            LookupResponded.model_validate_json(v) for v, _ in await read(settings, responses_topic(settings), 2)
        ]
        await send_request(bridge_system, settings, dup)
        letters = await read(settings, dlq_topic(settings), 1)
    by_meter = {a.data.meter_number: a.data for a in answers}
    supported = by_meter["0401000001"]
    assert supported.status == "supported" and supported.utility is not None and supported.customer is not None
    assert supported.utility.name == "Riverside" and supported.min_amount is not None
    assert by_meter["0999000001"].status == "not_supported"
    headers = DeadLetterHeaders.from_headers(letters[0][1])
    assert headers.error_class == "DUPLICATE_RECORD" and headers.stage == "apply"
    assert config.refused == 0 and len(config.received) == 3
    for path_id, body in config.received:
        assert electrum.violations("MeterLookupRequest", body) == [], body
        assert body["id"] == path_id and uuid.UUID(path_id).version == 4
        assert body["originator"]["institution"]["id"] == SWITCH_ELECTRUM_ID
        assert body["settlementEntity"] == {"id": ELECTRUM_IDS["p1"], "name": "Provider p1"}
        assert {"institutionId": SWITCH_ELECTRUM_ID, "transactionIdentifier": path_id} in body["thirdPartyIdentifiers"]
    sent = {b["meter"]["meterId"]: b for _, b in config.received}
    assert sent["0401000001"]["client"] == {"id": "1001", "name": "Bank One"}
    assert sent["0401000001"]["receiver"] == {"id": "4001", "name": "Riverside"}, "the meter's utility"
    assert sent["0999000001"]["client"]["id"] == SWITCH_ELECTRUM_ID, "no institution: the switch is the client"
    assert "receiver" not in sent["0999000001"], "utility unknown and no default receiver configured"


async def test_a_body_that_cannot_be_valid_is_never_sent_and_the_provider_shows_misconfigured(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE institutions SET electrum_id = NULL WHERE institution_id = 'i1'")
    config = SimulatorConfig(USER, PASSWORD)
    async with simulator(config) as base, bridge(settings, db, base):
        await send_request(bridge_system, settings, lookup("0401000010"))
        letters = await read(settings, dlq_topic(settings), 1)
        row = await eventually(
            lambda: db.fetchrow("SELECT health, health_detail FROM providers WHERE provider_id = 'p1'"),
            what="health",
        )
    headers = DeadLetterHeaders.from_headers(letters[0][1])
    assert headers.error_class == "ConfigurationError"
    assert "client.id" in headers.error_message and "i1" in headers.error_message
    assert config.calls == 0, "a body the interface refuses never leaves"
    assert row["health"] == "MISCONFIGURED" and "client.id" in row["health_detail"]


async def test_a_format_error_is_dead_lettered_whole_and_cleared_when_the_provider_answers(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    detail = [{"messageProperty": "x", "field": "meter.serviceType", "error": "must not be null", "invalidValue": None}]
    refusing = {"on": True}
    app = FastAPI()

    @app.post("/prepaidutility/v3/meterLookups/{lookup_id}")
    async def refuse(lookup_id: str, request: Request) -> JSONResponse:
        if refusing["on"]:  # a provider on an interface version that asks for a field we do not send
            body = {
                "errorType": "FORMAT_ERROR",
                "errorMessage": "Bad formatting",
                "requestType": "METER_LOOKUP_REQUEST",
            }
            return JSONResponse({**body, "id": lookup_id, "detailMessage": detail}, status_code=400)
        body = {"errorType": "UNKNOWN_METER_ID", "errorMessage": "Unknown meter", "requestType": "METER_LOOKUP_REQUEST"}
        return JSONResponse({**body, "id": lookup_id}, status_code=400)

    async with serve_app(app, log_level="critical") as base, bridge(settings, db, base):
        await send_request(bridge_system, settings, lookup("0401000011"))
        letters = await read(settings, dlq_topic(settings), 1)
        await eventually(
            lambda: db.fetchval("SELECT health = 'MISCONFIGURED' FROM providers WHERE provider_id = 'p1'"),
            what="MISCONFIGURED",
        )
        refusing["on"] = False
        await send_request(bridge_system, settings, lookup("0401000012"))
        answer = LookupResponded.model_validate_json((await read(settings, responses_topic(settings), 1))[0][0])
        await eventually(
            lambda: db.fetchval("SELECT health = 'HEALTHY' FROM providers WHERE provider_id = 'p1'"), what="HEALTHY"
        )
    headers = DeadLetterHeaders.from_headers(letters[0][1])
    assert headers.error_class == "FORMAT_ERROR" and "meter.serviceType" in headers.error_message
    assert headers.provider_error is not None
    assert json.loads(headers.provider_error)["detailMessage"] == detail, "the provider's whole ErrorDetail"
    assert answer.data.status == "not_supported", "UNKNOWN_METER_ID stays a final Not Supported"


async def test_a_slow_lookup_does_not_hold_back_the_ones_behind_it(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    gate = asyncio.Event()  # the first lookup's answer is held until the other 19 are answered
    config = SimulatorConfig(USER, PASSWORD, latency_ms=(1, 5), gates={"0401000100": gate})
    async with simulator(config) as base, bridge(settings, db, base, call_seconds=15):
        first = lookup("0401000100", deadline_s=30)
        others = [lookup(f"04010001{i:02d}", deadline_s=30) for i in range(1, 20)]
        await send_request(bridge_system, settings, first)
        await eventually(lambda: _at_least(config.calls, 1), what="the first lookup to reach the provider")
        for event in others:
            await send_request(bridge_system, settings, event)
        quick = await read(settings, responses_topic(settings), 19, within=20)
        assert not gate.is_set(), "the 19 were answered while the first was still held"
        gate.set()
        everything = await read(settings, responses_topic(settings), 20, within=20)
        await eventually(lambda: committed_all(settings, GROUP), what="offsets committed to the end")
    quick_ids = {LookupResponded.model_validate_json(v).data.lookup_id for v, _ in quick}
    assert quick_ids == {e.data.lookup_id for e in others}, "the 19 came first"
    ids = [LookupResponded.model_validate_json(v).data.lookup_id for v, _ in everything]
    assert sorted(map(str, ids)) == sorted(str(e.data.lookup_id) for e in [first, *others]), "each once"


async def test_server_errors_are_retried_until_the_deadline_and_the_breaker_opens(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    config = SimulatorConfig(USER, PASSWORD, error_rate=1.0, latency_ms=(0, 1))
    before = {name: _sample(name, **labels) for name, labels in WATCHED.items()}
    async with simulator(config) as base, bridge(settings, db, base):
        await send_request(bridge_system, settings, lookup("0401000003", deadline_s=4))
        await eventually(lambda: _at_least(config.calls, 1), what="first call")
        await eventually(lambda: committed_all(settings, GROUP), what="the bridge to give up at the deadline")
        calls_at_deadline = config.calls
        with pytest.raises(TimeoutError):
            await read(settings, responses_topic(settings), 1, within=1)
    gained = {name: _sample(name, **labels) - before[name] for name, labels in WATCHED.items()}
    assert gained["ppu_bridge_retries_total"] >= 1, "server errors are retried"
    assert gained["ppu_bridge_breaker_changes_total"] >= 1, "five failures open the breaker"
    assert gained["ppu_bridge_outcomes_total"] == 1, "one lookup given up without an answer, once"
    assert 2 <= calls_at_deadline <= 7, "retried, but the breaker (5 failures) stopped the hammering"
    assert config.calls == calls_at_deadline, "nothing after the deadline"


WATCHED = {
    "ppu_bridge_retries_total": {"provider": "p1"},
    "ppu_bridge_breaker_changes_total": {"provider": "p1", "state": "open"},
    "ppu_bridge_outcomes_total": {"provider": "p1", "outcome": "no_answer"},
}


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _at_least(value: int, least: int) -> bool:
    return value >= least


async def test_timeouts_give_no_answer_and_a_provider_back_from_down_answers(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    config = SimulatorConfig(USER, PASSWORD, timeout_rate=1.0)
    async with simulator(config) as base, bridge(settings, db, base, call_seconds=0.5):
        await send_request(bridge_system, settings, lookup("0401000004", deadline_s=2))
        await eventually(lambda: _at_least(config.calls, 2), what="the timed-out call to be retried")
        await eventually(lambda: committed_all(settings, GROUP), what="the bridge to give up at the deadline")
        with pytest.raises(TimeoutError):
            await read(settings, responses_topic(settings), 1, within=1)
        config.timeout_rate, config.down = 0.0, True
        async with httpx.AsyncClient() as c:
            assert (await c.post(f"{base}/sim/down", params={"on": "false"})).json() == {"down": False}
        await send_request(bridge_system, settings, lookup("0401000005", deadline_s=10))
        answers = await read(settings, responses_topic(settings), 1)
    assert LookupResponded.model_validate_json(answers[0][0]).data.status == "supported"


async def test_an_answer_lost_after_the_provider_recorded_the_lookup_is_asked_for_again(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    config = SimulatorConfig(USER, PASSWORD, supports=re.compile(r"04.*"), lose_answers=1)
    sent = lookup("0401000006", deadline_s=15)
    async with simulator(config) as base, bridge(settings, db, base, call_seconds=0.5):
        await send_request(bridge_system, settings, sent)
        answers = await read(settings, responses_topic(settings), 1)
        with pytest.raises(TimeoutError):  # the DUPLICATE_RECORD of the retry is not dead-lettered
            await read(settings, dlq_topic(settings), 1, 1)
    answer = LookupResponded.model_validate_json(answers[0][0]).data
    assert answer.lookup_id == sent.data.lookup_id and answer.status == "supported"
    ids = [path_id for path_id, _ in config.received]
    ours = str(sent.data.lookup_id)
    assert ids[:2] == [ours, ours] and len(ids) == 3 and ids[2] != ours, "timed out, DUPLICATE_RECORD, new id"
    assert {"institutionId": SWITCH_ELECTRUM_ID, "transactionIdentifier": ours} in config.received[2][1][
        "thirdPartyIdentifiers"
    ]


async def test_a_garbage_answer_is_dead_lettered_with_what_the_provider_sent(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    config = SimulatorConfig(USER, PASSWORD, garbage_rate=1.0)
    async with simulator(config) as base, bridge(settings, db, base):
        await send_request(bridge_system, settings, lookup("0401000007"))
        letters = await read(settings, dlq_topic(settings), 1)
        with pytest.raises(TimeoutError):  # a garbage 201 is no answer about the meter
            await read(settings, responses_topic(settings), 1, within=1)
    headers = DeadLetterHeaders.from_headers(letters[0][1])
    assert headers.error_class == "ProviderError" and headers.error_message.startswith("unreadable 201 answer")
    assert config.calls == 1, "not retried: the provider answered"


async def test_down_provider_is_skipped_by_routing_and_comes_back_when_it_answers(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    await db.execute("UPDATE providers SET health = 'DOWN' WHERE provider_id = 'p1'")
    await db.execute("INSERT INTO meters (meter_number) VALUES ('0401000006')")
    await db.execute(
        "INSERT INTO meter_support (meter_number, provider_id, status) VALUES "
        "('0401000006', 'p1', 'supported'), ('0401000006', 'p2', 'not_supported'), "
        "('0401000006', 'p3', 'not_supported')"
    )
    async with running(settings.model_copy(update={"round_deadline_seconds": 2.0})) as s:
        first = await s.attempt("0401000006")
        row = await _decision(db, first.data.attempt_id)
        assert row["outcome"] == "blocked" and {"provider_id": "p1", "reason": "provider DOWN"} in row["skipped"]
        # The operator asks for a re-check; the next attempt rebroadcasts and the DOWN provider answers.
        await s.confirm_support("0401000006")
        await eventually(
            lambda: db.fetchval("SELECT EXISTS (SELECT 1 FROM rebroadcast_marks WHERE meter_number = '0401000006')"),
            what="marked",
        )
        second = await s.attempt("0401000006")
        request = (await s.requests("p1", 1))[0]
        assert request.data.reason == "rebroadcast", "a DOWN provider is still asked, so it can come back"
        await s.respond(request, "supported")
        row = await _decision(db, second.data.attempt_id)
    assert (row["outcome"], row["provider_id"]) == ("routed", "p1")
    assert await db.fetchval("SELECT health FROM providers WHERE provider_id = 'p1'") == "DEGRADED"


async def _decision(db: asyncpg.Connection, attempt_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record = await eventually(
        lambda: db.fetchrow("SELECT * FROM routing_decisions WHERE attempt_id = $1", attempt_id), what="decision"
    )
    return row
