"""CLI for providers: the registry (add, list, enable, disable), simulators, and the HTTP bridge."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import click

from ppu.errors import PpuError
from ppu.settings import Settings
from ppu.wiring import connection, endpoints


@click.group()
def providers() -> None:
    """The provider registry."""


@providers.command("add")
@click.argument("provider_id")
@click.option("--name", required=True)
@click.option("--mode", type=click.Choice(["kafka", "http"]), default="kafka", show_default=True)
@click.option("--base-url", default=None, help="http mode: the provider's REST base URL")
@click.option("--credentials-env", default=None, help="http mode: the variable that holds USER:PASSWORD")
@click.option("--timeout-ms", type=click.IntRange(1, 600_000), default=60_000, show_default=True)
@click.option("--max-in-flight", type=click.IntRange(1, 1000), default=16, show_default=True)
@click.option("--institution", "institutions", multiple=True, help="enable it for this institution (repeatable)")
def providers_add(
    provider_id: str,
    name: str,
    mode: str,
    base_url: str | None,
    credentials_env: str | None,
    timeout_ms: int,
    max_in_flight: int,
    institutions: tuple[str, ...],
) -> None:
    """Register (or update) a provider and create its lookup-request topics."""
    from console.auth import audit
    from ppu import topic_admin

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", provider_id):
        raise click.BadParameter("1-40 letters, digits, - or _", param_hint="PROVIDER_ID")
    if mode == "http" and not (base_url and credentials_env):
        raise click.BadParameter("http mode needs --base-url and --credentials-env")
    settings = Settings()

    async def add() -> list[str]:
        async with connection(settings) as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO providers (provider_id, name, integration_mode, base_url, credentials_ref, timeout_ms,
                                          max_in_flight) VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (provider_id) DO UPDATE SET name = excluded.name,
                     integration_mode = excluded.integration_mode, base_url = excluded.base_url,
                     credentials_ref = excluded.credentials_ref, timeout_ms = excluded.timeout_ms,
                     max_in_flight = excluded.max_in_flight""",
                provider_id,
                name,
                mode,
                base_url,
                credentials_env,
                timeout_ms,
                max_in_flight,
            )
            await conn.executemany(
                "INSERT INTO institution_providers VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [(i, provider_id) for i in institutions],
            )
            await audit(conn, None, "providers_add", provider_id, "ok", actor="cli")
        async with topic_admin.admin_client(endpoints(settings).kafka_bootstrap_servers) as client:
            return await topic_admin.apply(client, settings.topic_prefix, [provider_id])

    changes = asyncio.run(add())
    click.echo(f"provider {provider_id} registered" + "".join(f"\n{c}" for c in changes if provider_id in c))


@providers.command("list")
def providers_list() -> None:
    """Every provider with its mode, state and health."""

    async def rows() -> list[str]:
        async with connection(Settings()) as conn:
            found = await conn.fetch("SELECT * FROM providers ORDER BY provider_id")
        return [
            f"{r['provider_id']:16}{r['name']:24}{r['integration_mode']:7}"
            f"{'enabled ' if r['enabled'] else 'disabled'} {r['health']:9}{r['base_url'] or ''}"
            for r in found
        ]

    click.echo("\n".join(asyncio.run(rows())) or "no providers")


def _set_enabled(provider_id: str, enabled: bool) -> None:
    from console.auth import audit

    async def update() -> str:
        async with connection(Settings()) as conn:
            done: str = await conn.execute(
                "UPDATE providers SET enabled = $2 WHERE provider_id = $1", provider_id, enabled
            )
            action = "providers_enable" if enabled else "providers_disable"
            await audit(
                conn, None, action, provider_id, "unknown provider" if done == "UPDATE 0" else "ok", actor="cli"
            )
            return done

    if asyncio.run(update()) == "UPDATE 0":
        raise PpuError(f"unknown provider {provider_id}")
    click.echo(f"{provider_id} {'enabled' if enabled else 'disabled: no new lookups go to it'}")


@providers.command("enable")
@click.argument("provider_id")
def providers_enable(provider_id: str) -> None:
    """Send it lookups and let routing choose it again."""
    _set_enabled(provider_id, True)


@providers.command("disable")
@click.argument("provider_id")
def providers_disable(provider_id: str) -> None:
    """Stop new lookups to it; routing skips it."""
    _set_enabled(provider_id, False)


@click.command("provider-sim")
@click.option("--provider", "provider_id", required=True)
@click.option("--mode", type=click.Choice(["kafka", "http"]), default="kafka", show_default=True)
@click.option("--supports", default=".*", show_default=True, help="regular expression of meter numbers it supports")
@click.option(
    "--meters-csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="http mode: a CSV whose first column lists supported meter numbers",
)
@click.option("--utility", default=None, help="utility name it reports for supported meters")
@click.option("--silent", is_flag=True, help="kafka mode: never answer (the provider stays Unconfirmed)")
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True, help="http mode")
@click.option(
    "--credentials-env",
    default="PPU_SIM_CREDENTIALS",
    show_default=True,
    help="http mode: the variable that holds the USER:PASSWORD it accepts",
)
@click.option("--latency-ms", default="5,30", show_default=True, help="MIN,MAX (uniform)")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help="http mode: share of 5xx answers")
@click.option("--timeout-rate", type=click.FloatRange(0, 1), default=0.0, help="http mode: share never answered")
@click.option("--copies", type=click.IntRange(1, 10), default=1, help="kafka mode: send every answer this many times")
@click.option("--garbage-rate", type=click.FloatRange(0, 1), default=0.0, help="share of answers that are garbage")
def provider_sim(
    provider_id: str,
    mode: str,
    supports: str,
    meters_csv: Path | None,
    utility: str | None,
    silent: bool,
    port: int,
    credentials_env: str,
    latency_ms: str,
    error_rate: float,
    timeout_rate: float,
    copies: int,
    garbage_rate: float,
) -> None:
    """A provider simulator: natively on Kafka, or serving the PPU v3 REST call."""
    import os

    from ppu.logs import configure_for_worker

    try:
        pattern = re.compile(supports)
        low, high = (float(x) for x in latency_ms.split(","))
    except (re.error, ValueError) as e:
        raise click.BadParameter(str(e)) from None
    settings = Settings()
    configure_for_worker(settings.log_level)
    if mode == "kafka":
        from providers.kafka_simulator import Coverage, run_simulator
        from workers.process import stop_on_signals

        async def kafka() -> None:
            await run_simulator(
                endpoints(settings).kafka_bootstrap_servers,
                settings.topic_prefix,
                provider_id,
                Coverage(pattern, utility, silent, (low, high), copies, garbage_rate),
                stop_on_signals(),
            )

        asyncio.run(kafka())
        return
    import uvicorn

    from providers.http_simulator import SimulatorConfig, create_simulator, load_meters_csv

    user, sep, password = os.environ.get(credentials_env, "").partition(":")
    if not sep:
        raise PpuError(f"set {credentials_env} to USER:PASSWORD for the simulator to accept")
    config = SimulatorConfig(
        user,
        password,
        pattern,
        load_meters_csv(meters_csv) if meters_csv else frozenset(),
        utility or "Simulated Utility",
        (low, high),
        error_rate,
        timeout_rate,
        garbage_rate=garbage_rate,
    )
    click.echo(f"provider {provider_id} simulator on http://127.0.0.1:{port}")
    uvicorn.run(
        create_simulator(config),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
