"""`ppu run` (what `make run` calls) and `ppu demo traffic`: the whole system, with live demo traffic."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid

import click

from infra.processes import free_port, stop_children
from kernel.connections import endpoints, started_producer
from kernel.settings import Settings
from ppu import demo_seed, demo_showcase
from schemas.envelope import CONTENT_TYPE
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData

# Demo coverage over meters 0401000000-0401000199: alpha sells for the even ones below 100 (Riverside), beta
# for 100-199 (Hillcrest), gamma never answers; the odd ones below 100 nobody supports (they get blocked).
DEMO_PROVIDERS = [
    ("prov-alpha", r"04010000\d[02468]", "Riverside Municipality", False),
    ("prov-beta", r"04010001\d\d", "Hillcrest Utility", False),
    ("prov-gamma", r"$^", None, True),
]


@click.command("traffic")
@click.option("--rate", type=click.FloatRange(min=0.01), default=2.0, show_default=True, help="attempts per second")
@click.option("--meters", type=click.IntRange(min=1, max=10_000_000), default=200, show_default=True)
@click.option(
    "--first",
    type=click.IntRange(min=0),
    default=demo_showcase.TRAFFIC_FIRST,
    show_default=True,
    help="the lowest meter drawn (the ones below are ppu run's showcase, kept still)",
)
@click.option("--count", type=click.IntRange(min=0), default=0, help="stop after this many (0: until Ctrl-C)")
def demo_traffic(rate: float, meters: int, first: int, count: int) -> None:
    """Publish purchase attempts for demo meters (0401000010 … 0401000199 by default) at a steady rate."""
    if first >= meters:
        raise click.BadParameter(f"--first {first} leaves no meter below --meters {meters}", param_hint="--first")
    asyncio.run(_traffic(Settings(), rate, range(first, meters), count))


async def _traffic(settings: Settings, rate: float, meters: range, count: int) -> None:
    from kernel.topics import topic

    name = topic("purchase_attempts").name(settings.topic_prefix)
    async with started_producer(endpoints(settings).kafka_bootstrap_servers) as producer:
        sent, started = 0, time.monotonic()
        while count == 0 or sent < count:
            data = PurchaseAttemptedData(
                attempt_id=uuid.uuid4(),
                meter_number=f"0401{random.choice(meters):06d}",
                institution_id=random.choice(["demo-bank", "demo-bank", "corner-wallet"]),
            )
            event = PurchaseAttempted.new(data, source="ppu/demo-traffic", correlationid=str(data.attempt_id))
            await producer.send(
                name,
                value=event.encode(),
                key=event.subject.encode(),
                headers=[("content-type", CONTENT_TYPE)],
            )
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))


def _ppu(*args: str) -> list[str]:
    return [sys.executable, "-m", "ppu.cli", *args]


@click.command()
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="demo purchase attempts per second",
)
def run(rate: float) -> None:
    """The whole system: stack, migrations, topics, demo data, workers, simulators, traffic. Ctrl-C stops it."""
    from infra import stack

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop everything; explicit because a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    settings = Settings()
    own_stack = settings.kafka_bootstrap_servers is None or settings.database_url is None
    if own_stack:
        state = stack.up(settings.state_dir, settings.kafka_version)
        click.echo(f"kafka     {state.kafka_bootstrap_servers}\npostgres  {state.database_url.split('@', 1)[1]}")
    children: list[subprocess.Popen[bytes]] = []
    try:
        # Free ports unless configured: a second copy on one machine (or anything on 8080) does not collide.
        console_port = settings.console_port if "PPU_CONSOLE_PORT" in os.environ else free_port()
        metrics_port = settings.metrics_port or free_port()
        delta_port = free_port()
        os.environ["PPU_CONSOLE_PORT"] = str(console_port)
        console_url = f"http://{settings.console_host}:{console_port}"
        subprocess.run(_ppu("db", "migrate"), check=True)
        seeded = subprocess.run(
            _ppu("demo", "seed", "--delta-url", f"http://127.0.0.1:{delta_port}"),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        subprocess.run(_ppu("topics", "apply"), check=True, stdout=subprocess.DEVNULL)
        # A fresh session secret per run: nothing to leak from the code, old cookies stop working.
        os.environ.setdefault("PPU_CONSOLE_SECRET_KEY", secrets.token_urlsafe(32))
        # The switch's own Electrum institution id in PPU v3 bodies (a demo value; production sets its own).
        os.environ.setdefault("PPU_SWITCH_INSTITUTION_ID", demo_seed.SWITCH_ELECTRUM_ID)
        # Operator commands are signed (console, CLI) and checked (command worker) with one key per run.
        os.environ.setdefault("PPU_COMMAND_SIGNING_KEY", secrets.token_urlsafe(32))
        logs = settings.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        procs = [("workers", ["worker", "all"])]
        procs += [
            (
                f"sim-{pid}",
                [
                    "provider-sim",
                    "--provider",
                    pid,
                    "--supports",
                    rx,
                    *(["--utility", u] if u else []),
                    *(["--silent"] if silent else []),
                ],
            )
            for pid, rx, u, silent in DEMO_PROVIDERS
        ]
        # Delta: the PPU v3 REST simulator (meters 0401000100-0401000149, 10% server errors) and its HTTP bridge,
        # sharing a random credential made for this run.
        os.environ.setdefault("PPU_SIM_CREDENTIALS", f"demo:{secrets.token_urlsafe(16)}")
        os.environ.setdefault("PPU_DEMO_DELTA_CREDENTIALS", os.environ["PPU_SIM_CREDENTIALS"])
        procs.append(
            (
                "sim-prov-delta",
                [
                    "provider-sim",
                    "--provider",
                    "prov-delta",
                    "--mode",
                    "http",
                    "--port",
                    str(delta_port),
                    "--supports",
                    r"04010001[0-4]\d",
                    "--utility",
                    "Hillcrest Utility",
                    "--error-rate",
                    "0.1",
                ],
            )
        )
        procs.append(("bridge-delta", ["worker", "provider-bridge", "--provider", "prov-delta"]))
        procs.append(("traffic", ["demo", "traffic", "--rate", str(rate)]))
        procs.append(("console", ["console"]))
        for name, args in procs:
            env = {**os.environ, "PPU_METRICS_PORT": str(metrics_port if name == "workers" else 0)}
            with (logs / f"{name}.log").open("ab") as log:
                children.append(subprocess.Popen(_ppu(*args), stdout=log, stderr=subprocess.STDOUT, env=env))
            click.echo(f"{name:16}{' '.join(args)}  (log: {logs / (name + '.log')})")
        click.echo(f"{'metrics':16}http://127.0.0.1:{metrics_port}/metrics (workers)")
        click.echo("\npreparing the showcase meters and waiting for the console …")
        # The banner comes once the console answers and the meters it names show what it says they show.
        missing = asyncio.run(demo_showcase.prepare(settings, console_url, click.echo))
        if missing:
            click.echo(f"not ready in time (see the logs): {', '.join(missing)}", err=True)
        click.echo("\ndemo logins:\n" + seeded.rstrip() + "\n")
        click.echo("\n".join(demo_showcase.banner(console_url)))
        click.echo("ready           (Ctrl-C stops everything)", nl=True)
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        failed = [c.args for c in children if c.poll() is not None]
        click.echo(f"a process ended: {failed}", err=True)
    except KeyboardInterrupt:
        click.echo("stopping…")
    finally:
        stop_children(children)
        if own_stack:
            stack.down(settings.state_dir)
