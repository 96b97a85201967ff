"""`ppu worker NAME`: run workers, or the HTTP bridge of one provider."""

from __future__ import annotations

import asyncio

import click

from kernel.settings import Settings
from workers.registry import ALL


@click.command()
@click.argument("name", type=click.Choice([*ALL, "all", "provider-bridge"]))
@click.option("--provider", "provider_id", default=None, help="provider-bridge: the provider it calls")
def worker(name: str, provider_id: str | None) -> None:
    """Run one worker (or all of them, for development) until SIGTERM/Ctrl-C."""
    from kernel.logs import configure_for_worker
    from workers.process import run_workers

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
