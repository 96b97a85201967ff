"""`ppu provider-sim`: a provider simulator, natively on Kafka or serving the PPU v3 REST call."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import click

from kernel.connections import endpoints
from kernel.errors import PpuError
from kernel.settings import Settings


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
@click.option("--no-auth", is_flag=True, help="http mode: ask for no credentials")
@click.option("--lenient", is_flag=True, help="http mode: do not judge requests by Electrum's constraints")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, help="http mode: serve HTTPS")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, help="with --tls-cert")
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
    no_auth: bool,
    lenient: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """A provider simulator: natively on Kafka, or serving the PPU v3 REST call."""
    import os

    from kernel.logs import configure_for_worker

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

    user: str | None
    password: str | None
    user, sep, password = os.environ.get(credentials_env, "").partition(":")
    if no_auth:
        user = password = None
    elif not sep:
        raise PpuError(f"set {credentials_env} to USER:PASSWORD for the simulator to accept (or --no-auth)")
    if bool(tls_cert) != bool(tls_key):
        raise click.BadParameter("--tls-cert and --tls-key go together")
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
        strict=not lenient,
    )
    click.echo(f"provider {provider_id} simulator on {'https' if tls_cert else 'http'}://127.0.0.1:{port}")
    uvicorn.run(
        create_simulator(config),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
