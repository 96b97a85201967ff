"""CLI commands that run the system: the registry of commands, workers and the HTTP bridge."""

from __future__ import annotations

import asyncio

import click

from ppu.settings import Settings


def register(cli: click.Group) -> None:
    from ppu.cli_console import console, users
    from ppu.cli_institutions import institutions, utilities
    from ppu.cli_providers import providers
    from ppu.cli_send import meter, send
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
