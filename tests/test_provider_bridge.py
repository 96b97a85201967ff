"""The HTTP bridge against the provider simulator, over real HTTP and the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from ppu.settings import Settings
from ppu.topics import topic
from providers.bridge_worker import run_bridge
from providers.http_bridge import Endpoint
from providers.http_simulator import SimulatorConfig, create_simulator
from providers.ppu_v3 import MeterLookupRequest
from schemas.dead_letter import DeadLetterHeaders
from schemas.lookup import LookupRequested, LookupRequestedData, LookupResponded
from tests.console_server import serve_app
from tests.harness import System, eventually, running

USER, PASSWORD = "bridge", "sim-secret-123"


def simulator(config: SimulatorConfig) -> contextlib.AbstractAsyncContextManager[str]:
    return serve_app(create_simulator(config), log_level="critical")


@contextlib.asynccontextmanager
async def bridge(settings: Settings, base: str, call_seconds: float = 2.0) -> AsyncIterator[None]:
    stop = asyncio.Event()
    endpoint = Endpoint("p1", "Provider p1", base, USER, PASSWORD, call_seconds, max_in_flight=4)
    task = asyncio.ensure_future(run_bridge(settings, endpoint, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def lookup(meter: str, deadline_s: float = 20, lookup_id: uuid.UUID | None = None) -> LookupRequested:
    data = LookupRequestedData(
        lookup_id=lookup_id or uuid.uuid4(),
        round_id=uuid.uuid4(),
        meter_number=meter,
        provider_id="p1",
        reason="first_seen",
        institution_id="i1",
        deadline=datetime.now(UTC) + timedelta(seconds=deadline_s),
    )
    return LookupRequested.new(data, source="test", correlationid="c")


async def read(settings: Settings, topic_name: str, count: int, within: float = 30) -> list[tuple[bytes, list]]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic_name,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    got: list[tuple[bytes, list]] = []  # type: ignore[type-arg]
    try:
        async with asyncio.timeout(within):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=200)
                got += [(r.value or b"", list(r.headers)) for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return got


@pytest.fixture
async def system(settings: Settings, topics: list[str]) -> AsyncIterator[System]:
    async with running(settings, names=()) as s:  # only the producer: the bridge is what runs
        yield s


def responses_topic(settings: Settings) -> str:
    return topic("lookup_responses").name(settings.topic_prefix)


async def test_supported_not_supported_and_duplicate_record(system: System, settings: Settings) -> None:
    config = SimulatorConfig(USER, PASSWORD, supports=re.compile(r"04.*"), utility_name="Riverside")
    async with simulator(config) as base, bridge(settings, base):
        yes, no = lookup("0401000001"), lookup("0999000001")
        dup = lookup("0401000002", lookup_id=yes.data.lookup_id)  # a reused lookup id
        await _send_request(system, settings, yes)
        await _send_request(system, settings, no)
        answers = [
            LookupResponded.model_validate_json(v) for v, _ in await read(settings, responses_topic(settings), 2)
        ]
        await _send_request(system, settings, dup)
        letters = await read(settings, topic("lookup_requests_dlq").name(settings.topic_prefix, provider_id="p1"), 1)
    by_meter = {a.data.meter_number: a.data for a in answers}
    assert by_meter["0401000001"].status == "supported" and by_meter["0401000001"].utility is not None
    assert by_meter["0401000001"].utility.name == "Riverside" and by_meter["0401000001"].customer is not None
    assert by_meter["0999000001"].status == "not_supported"
    headers = DeadLetterHeaders.from_headers(letters[0][1])
    assert headers.error_class == "DUPLICATE_RECORD" and headers.stage == "apply"
    for path_id, body in config.received:  # every body the bridge sent keeps the interface's field rules
        request = MeterLookupRequest.model_validate(body)
        assert str(request.id) == path_id and uuid.UUID(path_id).version == 4
        assert len(body["originator"]["terminalId"]) == 8 and len(body["originator"]["merchant"]["merchantId"]) == 15
        assert re.fullmatch(r"\d{4}", body["originator"]["merchant"]["merchantType"])
        name = body["originator"]["merchant"]["merchantName"]
        assert len(name["name"]) <= 23 and len(name["city"]) <= 13 and len(name["region"]) == len(name["country"]) == 2
        assert body["settlementEntity"]["id"] == "p1" and body["client"]["id"] == "i1" and body["receiver"]
        assert {"institutionId": settings.switch_institution_id, "transactionIdentifier": path_id} in body[
            "thirdPartyIdentifiers"
        ]
        assert re.fullmatch(r"[A-Za-z0-9]{1,20}", body["meter"]["meterId"])
        datetime.fromisoformat(body["time"])


async def _send_request(system: System, settings: Settings, event: LookupRequested) -> None:
    await system.producer.send_and_wait(
        topic("lookup_requests").name(settings.topic_prefix, provider_id="p1"),
        value=event.encode(),
        key=event.subject.encode(),
    )


async def test_server_errors_are_retried_until_the_deadline_and_the_breaker_opens(
    system: System, settings: Settings
) -> None:
    config = SimulatorConfig(USER, PASSWORD, error_rate=1.0, latency_ms=(0, 1))
    async with simulator(config) as base, bridge(settings, base):
        started = time.monotonic()
        await _send_request(system, settings, lookup("0401000003", deadline_s=4))
        while config.calls == 0:  # noqa: ASYNC110 - the simulator counts, it does not signal
            await asyncio.sleep(0.05)
        await asyncio.sleep(5)
        calls_at_deadline = config.calls
        await asyncio.sleep(1.5)
    assert 2 <= calls_at_deadline <= 7, "retried, but the breaker (5 failures) stopped the hammering"
    assert config.calls == calls_at_deadline, "nothing after the deadline"
    assert time.monotonic() - started > 4
    with pytest.raises(TimeoutError):
        await read(settings, responses_topic(settings), 1, within=1)


async def test_timeouts_give_no_answer_and_a_provider_back_from_down_answers(
    system: System, settings: Settings
) -> None:
    config = SimulatorConfig(USER, PASSWORD, timeout_rate=1.0)
    async with simulator(config) as base, bridge(settings, base, call_seconds=0.5):
        await _send_request(system, settings, lookup("0401000004", deadline_s=2))
        await asyncio.sleep(3)
        assert config.calls >= 2, "each timed-out call was retried"
        with pytest.raises(TimeoutError):
            await read(settings, responses_topic(settings), 1, within=1)
        config.timeout_rate, config.down = 0.0, True
        async with httpx.AsyncClient() as c:
            assert (await c.post(f"{base}/sim/down", params={"on": "false"})).json() == {"down": False}
        await _send_request(system, settings, lookup("0401000005", deadline_s=10))
        answers = await read(settings, responses_topic(settings), 1)
    assert LookupResponded.model_validate_json(answers[0][0]).data.status == "supported"


async def test_an_answer_lost_after_the_provider_recorded_the_lookup_is_asked_for_again(
    system: System, settings: Settings
) -> None:
    config = SimulatorConfig(USER, PASSWORD, supports=re.compile(r"04.*"), lose_answers=1)
    sent = lookup("0401000006", deadline_s=15)
    async with simulator(config) as base, bridge(settings, base, call_seconds=0.5):
        await _send_request(system, settings, sent)
        answers = await read(settings, responses_topic(settings), 1)
        with pytest.raises(TimeoutError):  # the DUPLICATE_RECORD of the retry is not dead-lettered
            await read(settings, topic("lookup_requests_dlq").name(settings.topic_prefix, provider_id="p1"), 1, 1)
    answer = LookupResponded.model_validate_json(answers[0][0]).data
    assert answer.lookup_id == sent.data.lookup_id and answer.status == "supported"
    ids = [path_id for path_id, _ in config.received]
    ours = str(sent.data.lookup_id)
    assert ids[:2] == [ours, ours] and len(ids) == 3 and ids[2] != ours, "timed out, DUPLICATE_RECORD, new id"
    assert {"institutionId": settings.switch_institution_id, "transactionIdentifier": ours} in config.received[2][1][
        "thirdPartyIdentifiers"
    ]


async def test_a_garbage_answer_is_dead_lettered_with_what_the_provider_sent(
    system: System, settings: Settings
) -> None:
    config = SimulatorConfig(USER, PASSWORD, garbage_rate=1.0)
    async with simulator(config) as base, bridge(settings, base):
        await _send_request(system, settings, lookup("0401000007"))
        letters = await read(settings, topic("lookup_requests_dlq").name(settings.topic_prefix, provider_id="p1"), 1)
        with pytest.raises(TimeoutError):  # a garbage 201 is no answer about the meter
            await read(settings, responses_topic(settings), 1, within=1)
    headers = DeadLetterHeaders.from_headers(letters[0][1])
    assert headers.error_class == "ProviderError" and headers.error_message.startswith("unreadable 201 answer")
    assert config.calls == 1, "not retried: the provider answered"


async def test_simulator_refuses_mismatched_ids_and_bad_credentials() -> None:
    config = SimulatorConfig(USER, PASSWORD)
    async with simulator(config) as base, httpx.AsyncClient(base_url=base) as c:
        body = {"id": str(uuid.uuid4()), "time": datetime.now(UTC).isoformat()}
        r = await c.post(f"/prepaidutility/v3/meterLookups/{uuid.uuid4()}", json=body, auth=(USER, PASSWORD))
        assert r.status_code == 400 and r.json()["errorType"] == "FORMAT_ERROR"
        r = await c.post(f"/prepaidutility/v3/meterLookups/{uuid.uuid4()}", json=body, auth=(USER, "wrong"))
        assert r.status_code == 401


async def test_down_provider_is_skipped_by_routing_and_comes_back_when_it_answers(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    from tests.harness import seed_reference

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
            lambda: db.fetchval("SELECT marked_for_rebroadcast FROM meters WHERE meter_number = '0401000006'"),
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
