"""Traces across hops, on the real broker, database, workers, HTTP bridge and PPU v3 simulator: one purchase
attempt's trace runs attempt → lookup worker → outbox relay → bridge (and its HTTP call) → response consumer →
decision published, every span in the one trace, each the child of the hop before it."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from kernel import tracing
from kernel.settings import Settings
from kernel.topics import topic
from providers.http_simulator import SimulatorConfig
from schemas.envelope import CONTENT_TYPE
from tests.bridging import PASSWORD, USER, bridge, simulator
from tests.harness import System, eventually, running
from workers.outbox_relay import unpublished

METER = "0401000909"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("ppu-test", None, False, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.disable()


def hop(found: list[ReadableSpan], pattern: str) -> ReadableSpan:
    matching = [s for s in found if re.search(pattern, s.name)]
    assert len(matching) == 1, (pattern, [s.name for s in found])
    return matching[0]


async def test_one_purchase_is_one_trace_across_every_hop(
    spans: InMemorySpanExporter, bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    config = SimulatorConfig(USER, PASSWORD, supports=re.compile(r"04.*"), utility_name="Riverside")
    # p1 first for Riverside: its answer settles the purchase in the response consumer, within the trace. (A
    # decision the sweeper makes at the budget or the deadline has no inbound message, so no trace to join.)
    await db.execute(
        "INSERT INTO utility_routing_preferences (institution_id, utility_id, provider_id, kind, rank, weight) "
        "VALUES ('i1', 'river', 'p1', 'ranked', 1, 1)"
    )
    async with simulator(config) as base, bridge(settings, db, base), running(settings) as system:
        attempt = await system.attempt(METER, send=False)
        with tracing.span("purchase attempt", kind=SpanKind.PRODUCER) as root:
            await system.producer.send_and_wait(
                topic("purchase_attempts").name(settings.topic_prefix),
                value=attempt.encode(),
                key=METER.encode(),
                headers=[("content-type", CONTENT_TYPE), *tracing.kafka_headers()],
            )
        trace_id = root.get_span_context().trace_id

        def in_trace() -> list[ReadableSpan]:
            return [s for s in spans.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]

        async def decision_published() -> bool:
            return any("routing-decisions" in s.name for s in in_trace())

        await eventually(decision_published, within=30, what="the decision published in the attempt's trace")
    found = in_trace()
    lookup = hop(found, r"ppu-lookup-worker process$")
    request = hop(found, r"^publish .*lookup-requests\.p1\.")
    call = hop(found, r"^PPU v3 lookup p1$")
    answer = hop(found, r"ppu-response-consumer process$")
    decision = hop(found, r"^publish .*routing-decisions")
    assert lookup.parent is not None and lookup.parent.span_id == root.get_span_context().span_id
    chain = [lookup, request, call, answer, decision]
    for parent, child in itertools.pairwise(chain):
        context = parent.get_span_context()
        assert child.parent is not None and context is not None and child.parent.span_id == context.span_id, (
            f"{child.name} is not the child of {parent.name}"
        )
    assert lookup.attributes is not None and lookup.attributes["ppu.correlation_id"] == str(attempt.data.attempt_id)
    # The HTTP hop: the provider received the bridge span's context in its request headers.
    carried = [t for t in config.traceparents if t and f"{trace_id:032x}" in t]
    call_context = call.get_span_context()
    assert carried and call_context is not None and carried[0].split("-")[2] == f"{call_context.span_id:016x}"
    assert await db.fetchval("SELECT provider_id FROM routing_decisions WHERE meter_number = $1", METER) == "p1"


async def test_tracing_off_adds_no_header(bridge_system: System, settings: Settings, db: asyncpg.Connection) -> None:
    assert not tracing.enabled()
    config = SimulatorConfig(USER, PASSWORD, supports=re.compile(r"04.*"), utility_name="Riverside")
    async with simulator(config) as base, bridge(settings, db, base), running(settings) as system:
        await system.attempt(METER)
        await eventually(lambda: db.fetchval("SELECT count(*) FROM routing_decisions"), what="the decision")
    assert config.traceparents and set(config.traceparents) == {None}
    assert not [m for m in await unpublished(db) if m[3] and any(k == "traceparent" for k, _ in m[3])]
