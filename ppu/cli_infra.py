"""CLI commands for the infrastructure: local stack, migrations, topics, contracts, demo data."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from infra import stack as local_stack
from infra import topic_admin
from kernel.connections import connection, endpoints
from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.stack_state import StackState
from kernel.topics import profile

provider_option = click.option(
    "--provider",
    "providers",
    multiple=True,
    help="provider id (repeatable; default: every provider in the database)",
)


@click.group()
def stack() -> None:
    """The local Kafka broker and PostgreSQL cluster."""


@stack.command("up")
@click.option("--brokers", type=click.Choice(["1", "3"]), default="1", show_default=True, help="Kafka nodes (KRaft)")
@click.option("--standby", is_flag=True, help="add a synchronous PostgreSQL standby (`ppu stack failover`)")
def stack_up(brokers: str, standby: bool) -> None:
    """Start (or reuse) the local broker(s) and database; print their addresses. With three brokers use the
    topics profile `cluster` (PPU_TOPICS_PROFILE=cluster)."""
    s = Settings()
    state = local_stack.up(s.state_dir, s.kafka_version, brokers=int(brokers), standby=standby)
    click.echo(f"kafka    {state.kafka_bootstrap_servers}")
    where = state.database_url.split("@", 1)[1]
    click.echo(f"postgres {where} (credentials in {StackState.path(s.state_dir)})")


@stack.command("failover")
def stack_failover() -> None:
    """Stop the PostgreSQL primary as a crash would, and promote the standby; the workers follow (their
    DATABASE_URL names both servers, target_session_attrs=read-write)."""
    state = local_stack.failover(Settings().state_dir)
    click.echo(f"standby promoted: {state.standby_dir}")


@stack.command("prepare")
def stack_prepare() -> None:
    """Install what the local stack needs (PostgreSQL server, Kafka jars); idempotent."""
    from infra.prepare import prepare

    for line in prepare(Settings().kafka_version):
        click.echo(line)


@stack.command("down")
def stack_down() -> None:
    """Stop the local broker and database."""
    click.echo("stopped" if local_stack.down(Settings().state_dir) else "nothing was running")


@stack.command("status")
def stack_status() -> None:
    """Whether the local broker and database answer."""
    for name, state in local_stack.status(Settings().state_dir).items():
        click.echo(f"{name:9}{state}")


@click.group()
def db() -> None:
    """Database schema."""


async def _migrate() -> list[int]:
    from db.migrate import migrate

    async with connection(Settings()) as conn:
        return await migrate(conn)


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (each once, transactionally)."""
    applied = asyncio.run(_migrate())
    click.echo(f"applied {', '.join(f'{v:04d}' for v in applied)}" if applied else "up to date")


@click.group()
def topics() -> None:
    """Kafka topics from topics.yaml."""


async def _provider_ids(explicit: tuple[str, ...], settings: Settings) -> list[str]:
    if explicit:
        return list(explicit)
    async with connection(settings) as conn:
        return [r["provider_id"] for r in await conn.fetch("SELECT provider_id FROM providers ORDER BY 1")]


async def _topics(check: bool, providers: tuple[str, ...], profile_name: str | None) -> list[str]:
    s = Settings()
    shape = profile(profile_name or s.topics_profile)
    ids = await _provider_ids(providers, s)
    async with topic_admin.admin_client(endpoints(s).kafka_bootstrap_servers) as client:
        if check:
            return await topic_admin.drift(client, s.topic_prefix, ids, shape)
        return await topic_admin.apply(client, s.topic_prefix, ids, shape)


profile_option = click.option(
    "--profile", "profile_name", default=None, help="topics.yaml replication profile (default: PPU_TOPICS_PROFILE)"
)


@topics.command("apply")
@provider_option
@profile_option
def topics_apply(providers: tuple[str, ...], profile_name: str | None) -> None:
    """Create or update every topic in topics.yaml (idempotent)."""
    changes = asyncio.run(_topics(False, providers, profile_name))
    click.echo("\n".join(changes) if changes else "topics match topics.yaml")


@topics.command("check")
@provider_option
@profile_option
def topics_check(providers: tuple[str, ...], profile_name: str | None) -> None:
    """List drift between the cluster and topics.yaml; exit 1 when there is any."""
    problems = asyncio.run(_topics(True, providers, profile_name))
    if problems:
        click.echo("\n".join(problems))
        raise click.exceptions.Exit(1)
    click.echo("topics match topics.yaml")


@click.group()
def contracts() -> None:
    """Message contracts (JSON Schema)."""


@contracts.command("export")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="folder (default: schemas/json)")
@click.option("--check", is_flag=True, help="exit 1 if the committed export is stale")
def contracts_export(out: Path | None, check: bool) -> None:
    """Write the JSON Schema of every message."""
    from schemas import export

    folder = out or export.EXPORT_DIR
    if check:
        stale = export.stale(folder)
        if stale:
            raise PpuError(f"stale contracts in {folder}: {', '.join(stale)}; run `ppu contracts export`")
        click.echo("contracts are up to date")
        return
    click.echo(f"wrote {len(export.write(folder))} schemas to {folder}")


@click.group()
def demo() -> None:
    """Demo data and traffic."""


async def _seed(delta_url: str) -> list[str]:
    from ppu.demo_seed import seed

    async with connection(Settings()) as conn:
        logins = await seed(conn, delta_url)
    return [f"{x.institution_id:14} {x.username:9} {x.role:9} {x.password}" for x in logins]


@demo.command("seed")
@click.option("--delta-url", default="http://127.0.0.1:8090", show_default=True, help="the PPU v3 simulator's URL")
def demo_seed(delta_url: str) -> None:
    """Demo institutions, users (random passwords, printed once), providers, utilities, preferences."""
    lines = asyncio.run(_seed(delta_url))
    click.echo("institution    user      role      password")
    click.echo("\n".join(lines))
