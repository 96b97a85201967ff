"""CLI for client institutions and utilities, each with the numeric institution id Electrum assigned it."""

from __future__ import annotations

import asyncio

import click

from db.audit import audit_cli
from kernel.connections import connection
from kernel.errors import PpuError
from kernel.settings import Settings
from ppu.cli_providers import electrum_id_option, name_option, slug, unique_electrum_id


def _parties(noun: str, table: str, key: str, about: str, add_help: str) -> click.Group:
    """`ppu institutions|utilities add|list`: the same two commands over two tables."""
    group = click.Group(table, help=about)

    @group.command("add", help=add_help)
    @click.argument("party_id", metavar=key.upper())
    @click.option("--name", required=True, callback=name_option)
    @click.option("--electrum-id", required=True, callback=electrum_id_option, help="its Electrum institution id")
    def add(party_id: str, name: str, electrum_id: str) -> None:
        _register(table, key, slug(party_id, key.upper()), name, electrum_id)
        click.echo(f"{noun} {party_id} registered (Electrum id {electrum_id})")

    @group.command("list", help=f"Every {noun} with its Electrum id.")
    def listing() -> None:
        click.echo(_listing(f"SELECT {key} AS id, electrum_id, name FROM {table} ORDER BY 1") or "none")

    return group


institutions = _parties(
    "institution",
    "institutions",
    "institution_id",
    "Client institutions (their users log in to the console).",
    "Register (or rename, renumber) a client institution.",
)


@institutions.command("operator")
@click.argument("institution_id")
def operator(institution_id: str) -> None:
    """Mark INSTITUTION_ID as the one that runs this deployment (the switch itself): its admins work dead letters
    in the console. One institution at a time: the mark moves."""

    async def apply() -> None:
        async with connection(Settings()) as conn, conn.transaction():
            if not await conn.fetchval("SELECT true FROM institutions WHERE institution_id = $1", institution_id):
                raise PpuError(f"unknown institution {institution_id}")
            await conn.execute("UPDATE institutions SET operates_deployment = false WHERE operates_deployment")
            await conn.execute(
                "UPDATE institutions SET operates_deployment = true WHERE institution_id = $1", institution_id
            )
            await audit_cli(conn, "institutions_operator", institution_id, "ok")

    asyncio.run(apply())
    click.echo(f"{institution_id} runs the deployment: its admins see dead letters in the console")


@institutions.command("auto-recheck")
@click.argument("institution_id")
@click.option("--after-minutes", type=click.IntRange(1, 525_600), help="mark meters whose provider is silent this long")
@click.option("--max-per-hour", type=click.IntRange(1, 100_000), default=60, show_default=True)
@click.option("--off", is_flag=True, help="turn the automatic re-check off (the default)")
def auto_recheck(institution_id: str, after_minutes: int | None, max_per_hour: int, off: bool) -> None:
    """Opt in (or out of) the automatic re-check: meters where one of the institution's providers has not answered a
    lookup for AFTER_MINUTES are marked for rebroadcast by the system, at most MAX_PER_HOUR meters an hour."""
    if off == (after_minutes is not None):
        raise click.UsageError("give either --after-minutes N or --off")

    async def apply() -> None:
        async with connection(Settings()) as conn, conn.transaction():
            if not await conn.fetchval("SELECT true FROM institutions WHERE institution_id = $1", institution_id):
                raise PpuError(f"unknown institution {institution_id}")
            if off:
                await conn.execute("DELETE FROM auto_recheck WHERE institution_id = $1", institution_id)
            else:
                await conn.execute(
                    """INSERT INTO auto_recheck (institution_id, after, max_per_hour, set_by)
                       VALUES ($1, make_interval(mins => $2), $3, 'cli')
                       ON CONFLICT (institution_id) DO UPDATE SET after = excluded.after,
                           max_per_hour = excluded.max_per_hour, set_by = 'cli', set_at = now()""",
                    institution_id,
                    after_minutes,
                    max_per_hour,
                )
            details = {"after_minutes": after_minutes, "max_per_hour": max_per_hour} if not off else {"off": True}
            await audit_cli(conn, "auto_recheck_set", institution_id, "ok", details=details)

    asyncio.run(apply())
    if off:
        click.echo(f"automatic re-check off for {institution_id}")
    else:
        click.echo(f"automatic re-check on for {institution_id}: after {after_minutes} min, {max_per_hour} meters/hour")


utilities = _parties(
    "utility",
    "utilities",
    "utility_id",
    "Utilities (a provider's answer can name a new one; give it its Electrum id here).",
    "Register a utility, or set the Electrum id of one a provider named (the `receiver` of lookups).",
)


def _register(table: str, key: str, value: str, name: str, electrum_id: str) -> None:
    async def register() -> None:
        async with connection(Settings()) as conn, conn.transaction():
            await unique_electrum_id(conn, table, key, value, electrum_id)
            if table == "utilities":
                clash = await conn.fetchval(
                    "SELECT utility_id FROM utilities WHERE name = $1 AND utility_id <> $2", name, value
                )
                if clash:
                    raise PpuError(f"the name {name!r} already belongs to utility {clash}")
            await conn.execute(
                f"""INSERT INTO {table} ({key}, name, electrum_id) VALUES ($1, $2, $3)
                    ON CONFLICT ({key}) DO UPDATE SET name = excluded.name, electrum_id = excluded.electrum_id""",
                value,
                name,
                electrum_id,
            )
            await audit_cli(conn, f"{table}_add", value, "ok", details={"electrum_id": electrum_id})

    asyncio.run(register())


def _listing(query: str) -> str:
    async def rows() -> list[str]:
        async with connection(Settings()) as conn:
            return [f"{r['id']:20}{r['electrum_id'] or '-':13}{r['name']}" for r in await conn.fetch(query)]

    return "\n".join(asyncio.run(rows()))
