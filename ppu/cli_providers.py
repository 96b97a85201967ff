"""CLI for the provider registry (add, update, list, enable, disable), each provider with the numeric institution
id Electrum assigned it (what PPU v3 bodies carry); the option checks here serve ppu/cli_institutions.py too."""

from __future__ import annotations

import asyncio
import re

import click

from db.audit import audit_cli
from kernel.connections import connection, endpoints
from kernel.dbconn import Db
from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.topics import profile


@click.group()
def providers() -> None:
    """The provider registry."""


def electrum_id_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9]{1,11}", value):
        raise click.BadParameter(f"{value!r}: Electrum institution ids are 1-11 digits")
    return value


def name_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not 1 <= len(value) <= 100:
        raise click.BadParameter("1-100 characters (sent to providers cut to 40)")
    return value


def slug(value: str, hint: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value):
        raise click.BadParameter("1-40 letters, digits, - or _", param_hint=hint)
    return value


ELECTRUM_ID = click.option(
    "--electrum-id", callback=electrum_id_option, help="the institution id Electrum assigned (1-11 digits)"
)
NAME = click.option("--name", callback=name_option)


@providers.command("add")
@click.argument("provider_id")
@click.option("--name", required=True, callback=name_option)
@click.option(
    "--electrum-id", required=True, callback=electrum_id_option, help="the provider's Electrum institution id"
)
@click.option("--mode", type=click.Choice(["kafka", "http"]), default="kafka", show_default=True)
@click.option("--base-url", default=None, help="http mode: the provider's REST base URL")
@click.option("--credentials-env", default=None, help="http mode: the variable that holds USER:PASSWORD, if any")
@click.option("--ca-file", default=None, help="http mode: CA bundle for a privately signed TLS certificate")
@click.option("--timeout-ms", type=click.IntRange(1, 600_000), default=60_000, show_default=True)
@click.option("--max-in-flight", type=click.IntRange(1, 1000), default=16, show_default=True)
@click.option("--institution", "institutions", multiple=True, help="enable it for this institution (repeatable)")
def providers_add(
    provider_id: str,
    name: str,
    electrum_id: str,
    mode: str,
    base_url: str | None,
    credentials_env: str | None,
    ca_file: str | None,
    timeout_ms: int,
    max_in_flight: int,
    institutions: tuple[str, ...],
) -> None:
    """Register (or replace) a provider and create its lookup-request topics."""
    from infra import topic_admin

    slug(provider_id, "PROVIDER_ID")
    if mode == "http" and not base_url:
        raise click.BadParameter("http mode needs --base-url")
    settings = Settings()

    async def add() -> list[str]:
        async with connection(settings) as conn, conn.transaction():
            await unique_electrum_id(conn, "providers", "provider_id", provider_id, electrum_id)
            await conn.execute(
                """INSERT INTO providers (provider_id, name, electrum_id, integration_mode, base_url,
                                          credentials_ref, ca_file, timeout_ms, max_in_flight)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (provider_id) DO UPDATE SET name = excluded.name, electrum_id = excluded.electrum_id,
                     integration_mode = excluded.integration_mode, base_url = excluded.base_url,
                     credentials_ref = excluded.credentials_ref, ca_file = excluded.ca_file,
                     timeout_ms = excluded.timeout_ms, max_in_flight = excluded.max_in_flight, updated_at = now()""",
                provider_id,
                name,
                electrum_id,
                mode,
                base_url,
                credentials_env,
                ca_file,
                timeout_ms,
                max_in_flight,
            )
            known = {r["institution_id"] for r in await conn.fetch("SELECT institution_id FROM institutions")}
            if unknown := sorted(set(institutions) - known):
                raise PpuError(f"unknown institution {', '.join(unknown)}")
            await conn.executemany(
                "INSERT INTO institution_providers VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [(i, provider_id) for i in institutions],
            )
            await audit_cli(conn, "providers_add", provider_id, "ok")
        async with topic_admin.admin_client(endpoints(settings).kafka_bootstrap_servers) as client:
            shape = profile(settings.topics_profile)
            return await topic_admin.apply(client, settings.topic_prefix, [provider_id], shape)

    changes = asyncio.run(add())
    click.echo(f"provider {provider_id} registered" + "".join(f"\n{c}" for c in changes if provider_id in c))


async def unique_electrum_id(conn: Db, table: str, key: str, value: str, electrum_id: str | None) -> None:
    """One readable line instead of a unique-constraint error when the id is someone else's."""
    if electrum_id is None:
        return
    other = await conn.fetchval(f"SELECT {key} FROM {table} WHERE electrum_id = $1 AND {key} <> $2", electrum_id, value)
    if other is not None:
        raise PpuError(f"Electrum id {electrum_id} already belongs to {other}")


@providers.command("update")
@click.argument("provider_id")
@NAME
@ELECTRUM_ID
@click.option("--base-url", default=None)
@click.option("--credentials-env", default=None, help="the variable that holds USER:PASSWORD")
@click.option("--no-credentials", is_flag=True, help="the provider asks for no credentials")
@click.option("--ca-file", default=None, help="CA bundle for a privately signed TLS certificate ('' to drop it)")
@click.option("--timeout-ms", type=click.IntRange(1, 600_000), default=None)
@click.option("--max-in-flight", type=click.IntRange(1, 1000), default=None)
def providers_update(
    provider_id: str,
    name: str | None,
    electrum_id: str | None,
    base_url: str | None,
    credentials_env: str | None,
    no_credentials: bool,
    ca_file: str | None,
    timeout_ms: int | None,
    max_in_flight: int | None,
) -> None:
    """Change a provider's settings; a running bridge picks them up within PPU_BRIDGE_RELOAD_SECONDS."""

    if no_credentials and credentials_env:
        raise click.BadParameter("--credentials-env and --no-credentials contradict each other")
    changes: dict[str, object] = {
        k: v
        for k, v in {
            "name": name,
            "electrum_id": electrum_id,
            "base_url": base_url,
            "credentials_ref": credentials_env,
            "ca_file": ca_file,
            "timeout_ms": timeout_ms,
            "max_in_flight": max_in_flight,
        }.items()
        if v is not None
    }
    if ca_file == "":
        changes["ca_file"] = None
    if no_credentials:
        changes["credentials_ref"] = None
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")

    async def update() -> None:
        async with connection(Settings()) as conn, conn.transaction():
            await unique_electrum_id(conn, "providers", "provider_id", provider_id, electrum_id)
            sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=2))
            done = await conn.execute(
                f"UPDATE providers SET {sets}, updated_at = now() WHERE provider_id = $1",
                provider_id,
                *changes.values(),
            )
            if done == "UPDATE 0":
                raise PpuError(f"unknown provider {provider_id}")
            # Only the name of the credentials variable is stored and audited, never a secret.
            await audit_cli(conn, "providers_update", provider_id, "ok", details=changes)

    asyncio.run(update())
    click.echo(f"provider {provider_id} updated: {', '.join(changes)} (a running bridge picks it up within seconds)")


@providers.command("list")
def providers_list() -> None:
    """Every provider with its mode, state and health."""

    async def rows() -> list[str]:
        async with connection(Settings()) as conn:
            found = await conn.fetch("SELECT * FROM providers ORDER BY provider_id")
        return [
            f"{r['provider_id']:16}{r['electrum_id'] or '-':12}{r['name'][:23]:24}{r['integration_mode']:7}"
            f"{'enabled ' if r['enabled'] else 'disabled'} {r['health']:14}{r['base_url'] or ''}"
            for r in found
        ]

    click.echo("\n".join(asyncio.run(rows())) or "no providers")


def _set_enabled(provider_id: str, enabled: bool) -> None:

    async def update() -> str:
        async with connection(Settings()) as conn:
            done: str = await conn.execute(
                "UPDATE providers SET enabled = $2 WHERE provider_id = $1", provider_id, enabled
            )
            action = "providers_enable" if enabled else "providers_disable"
            await audit_cli(conn, action, provider_id, "unknown provider" if done == "UPDATE 0" else "ok")
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
