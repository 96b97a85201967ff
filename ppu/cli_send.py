"""`ppu send` and `ppu meter show`: drive the system and look at it from a shell, as one named institution."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TextIO

import click
from opentelemetry.trace import SpanKind
from pydantic import TypeAdapter, ValidationError

from domain.command_proof import sign
from kernel import tracing
from kernel.connections import connection, endpoints, started_producer
from kernel.dbconn import Db
from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.topics import topic
from operations.bulk_confirm import OUTCOMES, MeterResult, TooMany, confirm_many, parse_meters
from operations.command_results import CommandResults
from operations.tenancy import Tenant
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import CONTENT_TYPE, Envelope, MeterNumber
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData


@click.group()
def send() -> None:
    """Publish a message, as the purchase service or the console would."""


def _meter(value: str) -> str:
    try:
        return TypeAdapter(MeterNumber).validate_python(value)
    except ValidationError:
        raise click.BadParameter(f"{value!r} is not a meter number (1-20 letters and digits)") from None


async def _publish(settings: Settings, topic_key: str, event: Envelope[Any]) -> None:
    tracing.configure_from(settings, "ppu-cli")  # a trace starts here when tracing is on
    name = topic(topic_key).name(settings.topic_prefix)
    async with started_producer(endpoints(settings).kafka_bootstrap_servers) as producer:
        with tracing.span(f"send {name}", kind=SpanKind.PRODUCER, meter=event.subject, event_type=event.type):
            await producer.send_and_wait(
                name,
                value=event.encode(),
                key=event.subject.encode(),
                headers=[("content-type", CONTENT_TYPE), *tracing.kafka_headers()],
            )


@send.command("purchase-attempt")
@click.argument("meter_number")
@click.option("--institution", default="demo-bank", show_default=True)
def send_purchase_attempt(meter_number: str, institution: str) -> None:
    """A purchase attempt for METER_NUMBER."""
    settings = Settings()
    data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=_meter(meter_number), institution_id=institution)
    event = PurchaseAttempted.new(data, source="ppu/cli", correlationid=str(data.attempt_id))

    async def run() -> None:
        async with connection(settings) as conn:
            await Tenant.known(conn, institution)
        await _publish(settings, "purchase_attempts", event)

    asyncio.run(run())
    click.echo(f"attempt {data.attempt_id} sent")


async def _check_admin(conn: Db, institution: str, admin: str) -> None:
    await Tenant.known(conn, institution)
    role = await conn.fetchval(
        "SELECT role FROM console_users WHERE institution_id = $1 AND username = $2", institution, admin
    )
    if role != "admin":
        raise PpuError(f"{admin} is not an admin of {institution}: the CLI signs only as a named local admin")


def _signing_key(settings: Settings) -> str:
    if settings.command_signing_key is None:
        raise PpuError("set PPU_COMMAND_SIGNING_KEY (the deployment's command signing key) to sign the command")
    return settings.command_signing_key.get_secret_value()


@send.command("confirm-support-bulk")
@click.argument("meters_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--admin", "admin", required=True, help="the local admin who signs the commands (a console admin)")
@click.option("--institution", required=True)
@click.option("--wait-seconds", type=click.FloatRange(0.1, 600), default=30.0, show_default=True)
def send_confirm_support_bulk(meters_file: TextIO, admin: str, institution: str, wait_seconds: float) -> None:
    """Confirm support for every meter in METERS_FILE (a CSV's first column, or numbers one per line; - reads
    standard input), as the console's bulk page does; prints a result per meter; exits 1 if any was refused."""
    settings = Settings()
    key = _signing_key(settings)
    try:
        meters = parse_meters(meters_file.read())
    except TooMany as e:
        raise PpuError(str(e)) from None
    if not meters:
        raise PpuError("no meter numbers in the file")

    async def run() -> list[MeterResult]:
        where = endpoints(settings)
        results = CommandResults(where.kafka_bootstrap_servers, topic("command_results").name(settings.topic_prefix))
        async with connection(settings) as conn, started_producer(where.kafka_bootstrap_servers) as producer:
            await _check_admin(conn, institution, admin)
            await results.start()
            try:
                return await confirm_many(
                    conn,
                    producer,
                    results,
                    meters=meters,
                    operator=admin,
                    institution_id=institution,
                    signing_key=key,
                    topic_prefix=settings.topic_prefix,
                    via="cli",
                    wait_seconds=wait_seconds,
                )
            finally:
                await results.stop()

    done = asyncio.run(run())
    for r in done:
        click.echo(f"{r.meter_number:22}{r.outcome:16}{r.reason or ''}".rstrip())
    counts = [f"{sum(r.outcome == o for r in done)} {o}" for o in OUTCOMES if any(r.outcome == o for r in done)]
    click.echo(", ".join(counts))
    if any(r.outcome == "refused" for r in done):
        raise SystemExit(1)


@send.command("confirm-support")
@click.argument("meter_number")
@click.option("--admin", "admin", required=True, help="the local admin who signs the command (a console admin)")
@click.option("--institution", required=True)
@click.option("--no-wait", is_flag=True, help="do not wait for the command's result")
@click.option("--wait-seconds", type=click.FloatRange(0.1, 600), default=30.0, show_default=True)
def send_confirm_support(meter_number: str, admin: str, institution: str, no_wait: bool, wait_seconds: float) -> None:
    """Confirm support for METER_NUMBER, signed as a named admin of the institution; exits 1 when refused."""
    settings = Settings()
    key = _signing_key(settings)
    data = ConfirmSupportRequestedData(meter_number=_meter(meter_number), operator=admin, institution_id=institution)
    command = sign(
        ConfirmSupportRequested.new(data, source="ppu/cli", correlationid=str(uuid.uuid4())),
        key,
    )

    async def run() -> str:
        async with connection(settings) as conn:
            await _check_admin(conn, institution, admin)
        if no_wait:
            await _publish(settings, "operator_commands", command)
            return f"command {command.id} sent"
        where = endpoints(settings)
        results = CommandResults(where.kafka_bootstrap_servers, topic("command_results").name(settings.topic_prefix))
        await results.start()
        try:
            waiting = results.expect(command.id)
            await _publish(settings, "operator_commands", command)
            result = await results.wait(waiting, command.id, wait_seconds)
        finally:
            await results.stop()
        if result is None:
            raise PpuError(
                f"command {command.id} sent, but no result within {wait_seconds:g} s (is the command worker running?)"
            )
        if result.outcome == "rejected":
            raise PpuError(f"command {command.id} rejected: {result.reason}")
        return f"command {command.id}: {result.outcome.replace('_', ' ')}"

    click.echo(asyncio.run(run()))


@click.group()
def meter() -> None:
    """Inspect meters."""


@meter.command("show")
@click.argument("meter_number")
@click.option("--institution", required=True, help="whose view: its providers, its decisions, its marks")
def meter_show(meter_number: str, institution: str) -> None:
    """The meter as the institution sees it: utility, flags, its providers' support, its latest decisions."""
    from operations.meter_view import render_text

    async def show() -> str:
        async with connection(Settings()) as conn:
            view = await (await Tenant.known(conn, institution)).meter(conn, _meter(meter_number))
        if view is None:
            raise PpuError(f"unknown meter {meter_number}")
        return render_text(view)

    click.echo(asyncio.run(show()))


@meter.command("history")
@click.argument("meter_number")
@click.option("--institution", required=True, help="whose view: shared answers, its own rounds, decisions, commands")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def meter_history(meter_number: str, institution: str, limit: int) -> None:
    """The meter's rounds, answers, decisions and commands as the institution sees them, newest first."""

    async def history() -> list[str]:
        async with connection(Settings()) as conn:
            tenant = await Tenant.known(conn, institution)
            entries = await tenant.timeline(conn, _meter(meter_number), limit=limit)
        if entries is None:
            raise PpuError(f"unknown meter {meter_number}")
        return [f"{e.at:%Y-%m-%d %H:%M:%S%z} {e.kind:9}{e.what:26}{e.who or '-':24}{e.detail or ''}" for e in entries]

    click.echo("\n".join(asyncio.run(history())) or "nothing recorded yet")
