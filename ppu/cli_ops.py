"""CLI commands that run and drive the system: workers, sends, meter inspection, demo traffic, `ppu run`."""

from __future__ import annotations

import asyncio
import uuid

import click

from ppu.errors import PpuError
from ppu.settings import Settings
from ppu.wiring import connection, endpoints, started_producer
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import CONTENT_TYPE, Envelope
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData


def register(cli: click.Group) -> None:
    from ppu.cli_console import console, users
    from ppu.cli_institutions import institutions, utilities
    from ppu.cli_providers import providers
    from ppu.cli_simulators import provider_sim
    from ppu.run_all import demo_traffic, run

    for command in (worker, send, meter, run, console, users, provider_sim, providers, institutions, utilities):
        cli.add_command(command)
    try:
        from bench.run import bench
        from faults.run import faults
    except ImportError:  # the bench extra (matplotlib, tqdm, psutil) is not installed
        pass
    else:
        cli.add_command(bench)
        cli.add_command(faults)
    demo = cli.get_command(click.Context(cli), "demo")
    assert isinstance(demo, click.Group)
    demo.add_command(demo_traffic)


@click.command()
@click.argument(
    "name", type=click.Choice(["lookup", "responses", "commands", "sweeper", "outbox-relay", "all", "provider-bridge"])
)
@click.option("--provider", "provider_id", default=None, help="provider-bridge: the provider it calls")
def worker(name: str, provider_id: str | None) -> None:
    """Run one worker (or all of them, for development) until SIGTERM/Ctrl-C."""
    from ppu.logs import configure_for_worker
    from workers.process import run_workers
    from workers.registry import ALL

    settings = Settings()
    configure_for_worker(settings.log_level)
    if name == "provider-bridge":
        if not provider_id:
            raise click.BadParameter("provider-bridge needs --provider ID")
        asyncio.run(_bridge(settings, provider_id))
        return
    asyncio.run(run_workers(list(ALL) if name == "all" else [name], settings))


async def _bridge(settings: Settings, provider_id: str) -> None:
    from providers.bridge_worker import run_bridge
    from workers.process import stop_on_signals

    await run_bridge(settings, provider_id, stop_on_signals())


@click.group()
def send() -> None:
    """Publish a message, as the purchase service or the console would."""


async def publish(
    topic_key: str,
    event: Envelope[PurchaseAttemptedData] | Envelope[ConfirmSupportRequestedData],
    settings: Settings,
) -> None:
    from ppu.topics import topic

    async with started_producer(endpoints(settings).kafka_bootstrap_servers) as producer:
        await producer.send_and_wait(
            topic(topic_key).name(settings.topic_prefix),
            value=event.encode(),
            key=event.subject.encode(),
            headers=[("content-type", CONTENT_TYPE)],
        )


def _meter(value: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    from schemas.envelope import MeterNumber

    try:
        return TypeAdapter(MeterNumber).validate_python(value)
    except ValidationError:
        raise click.BadParameter(f"{value!r} is not a meter number (1-20 letters and digits)") from None


@send.command("purchase-attempt")
@click.argument("meter_number")
@click.option("--institution", default="demo-bank", show_default=True)
def send_purchase_attempt(meter_number: str, institution: str) -> None:
    """A purchase attempt for METER_NUMBER."""
    data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=_meter(meter_number), institution_id=institution)
    event = PurchaseAttempted.new(data, source="ppu/cli", correlationid=str(data.attempt_id))
    asyncio.run(publish("purchase_attempts", event, Settings()))
    click.echo(f"attempt {data.attempt_id} sent")


@send.command("confirm-support")
@click.argument("meter_number")
@click.option("--operator", required=True, help="the operator's user name")
@click.option("--institution", required=True)
def send_confirm_support(meter_number: str, operator: str, institution: str) -> None:
    """An operator's Confirm support command for METER_NUMBER."""
    data = ConfirmSupportRequestedData(meter_number=_meter(meter_number), operator=operator, institution_id=institution)
    command_id = uuid.uuid4()
    event = ConfirmSupportRequested.new(data, source="ppu/cli", correlationid=str(command_id))
    asyncio.run(publish("operator_commands", event, Settings()))
    click.echo(f"command {event.id} sent")


@click.group()
def meter() -> None:
    """Inspect meters."""


@meter.command("show")
@click.argument("meter_number")
@click.option("--institution", default=None, help="show only the providers this institution has enabled")
def meter_show(meter_number: str, institution: str | None) -> None:
    """The meter's utility, flags, per-provider support and latest routing decisions."""
    from ppu.meter_view import load_meter, render_text

    async def show() -> str:
        async with connection(Settings()) as conn:
            view = await load_meter(conn, _meter(meter_number), institution)
        if view is None:
            raise PpuError(f"unknown meter {meter_number}")
        return render_text(view)

    click.echo(asyncio.run(show()))
