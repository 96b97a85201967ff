"""Traces across hops (OpenTelemetry): purchase attempt → lookup worker → outbox → provider → response → decision.

Off unless configured: `OTEL_EXPORTER_OTLP_ENDPOINT` exports over OTLP/HTTP, `PPU_TRACE_CONSOLE=true` prints each
span as JSON on standard output. Off, nothing here runs on the hot path (`enabled()` is false and no header is
read or written). The W3C trace context travels in Kafka headers (`traceparent`, `tracestate`) and, through the
HTTP bridge, in the provider call's HTTP headers; the envelope's correlation id stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kernel.settings import Settings

TRACE_HEADERS = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None  # our own provider's, not the global one: tests and processes configure it once each


def configure(service: str, otlp_endpoint: str | None, console: bool, exporter: SpanExporter | None = None) -> None:
    """Turns tracing on for this process when an endpoint, the console or (tests) an exporter is given."""
    global _tracer
    if not (otlp_endpoint or console or exporter):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads OTEL_EXPORTER_OTLP_* itself
    if console:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("ppu")


def configure_from(settings: Settings, service: str) -> None:
    configure(service, settings.otel_endpoint, settings.trace_console)


def disable() -> None:
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


def tracer() -> Tracer:
    assert _tracer is not None, "tracing is off: check enabled() first"
    return _tracer


def extract(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    """The trace context a Kafka record carries (an empty context when none)."""
    carrier = {k: v.decode("latin-1") for k, v in headers or () if k in TRACE_HEADERS}
    return _PROPAGATOR.extract(carrier)


def inject(ctx: Context | None = None) -> dict[str, str]:
    """The W3C headers of `ctx` (default: the current context)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def kafka_headers(ctx: Context | None = None) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in inject(ctx).items()] if enabled() else []


def child_headers(span: Span) -> dict[str, str]:
    return inject(set_span_in_context(span))


@contextmanager
def span(name: str, parent: Context | None = None, kind: SpanKind = SpanKind.INTERNAL, **attrs: str) -> Iterator[Span]:
    """A span made current for the block (a no-op when tracing is off)."""
    if _tracer is None:
        yield INVALID_SPAN
        return
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attrs) as s:
        yield s


def start(name: str, parent: Context, kind: SpanKind, attrs: dict[str, str]) -> Span:
    """A span the caller ends (one per message of a batch, ended when the batch commits)."""
    return tracer().start_span(name, context=parent, kind=kind, attributes=attrs)


def end_all(spans: Sequence[Span]) -> None:
    for s in spans:
        s.end()
