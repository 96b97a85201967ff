"""CLI commands for the console: serve it, and add its users."""

from __future__ import annotations

import asyncio
import sys

import click

from kernel.connections import connection
from kernel.settings import Settings

ROLES = ["viewer", "operator", "admin"]


@click.command()
@click.option("--host", default=None, help="default: PPU_CONSOLE_HOST (127.0.0.1)")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="default: PPU_CONSOLE_PORT (8080)")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None)
def console(host: str | None, port: int | None, ssl_certfile: str | None, ssl_keyfile: str | None) -> None:
    """Serve the operator console (pages and /api/v1)."""
    import uvicorn

    from console.app import create_app
    from infra.processes import port_is_free
    from kernel.errors import PpuError

    overrides = {"console_tls": True} if ssl_certfile else {}
    settings = Settings().model_copy(update=overrides)
    host, port = host or settings.console_host, port if port is not None else settings.console_port
    if port and host in ("127.0.0.1", "localhost") and not port_is_free(port):
        raise PpuError(f"port {port} on {host} is taken; choose another with --port")
    app = create_app(settings)
    scheme = "https" if ssl_certfile else "http"
    click.echo(f"console on {scheme}://{host}:{port}")
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level="warning",
        access_log=False,
    )


@click.group()
def users() -> None:
    """Console users."""


@users.command("add")
@click.option("--institution", required=True)
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def users_add(institution: str, username: str, role: str, password_stdin: bool) -> None:
    """Create (or reset the password of) a console user; the password is hashed with Argon2id."""
    from console.auth import audit, revoke_sessions
    from kernel.errors import PpuError
    from kernel.passwords import hash_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        raise PpuError("passwords have at least 12 characters")

    async def add() -> None:
        async with connection(Settings()) as conn:
            if not await conn.fetchval("SELECT true FROM institutions WHERE institution_id = $1", institution):
                raise PpuError(f"unknown institution {institution}")
            user_id = await conn.fetchval(
                """INSERT INTO console_users (institution_id, username, password_hash, role) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (institution_id, username)
                   DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role
                   RETURNING user_id""",
                institution,
                username,
                hash_password(password),
                role,
            )
            await revoke_sessions(conn, user_id)  # a reset password or changed role ends the old sessions
            await audit(conn, None, "users_add", username, role, actor="cli", institution_id=institution)

    asyncio.run(add())
    click.echo(f"user {username} of {institution} has the {role} role")


@users.command("revoke")
@click.option("--institution", required=True)
@click.option("--username", required=True)
def users_revoke(institution: str, username: str) -> None:
    """End every session of a console user at once (a lost laptop, a copied cookie)."""
    from console.auth import audit, revoke_sessions
    from kernel.errors import PpuError

    async def revoke() -> int:
        async with connection(Settings()) as conn:
            user_id = await conn.fetchval(
                "SELECT user_id FROM console_users WHERE institution_id = $1 AND username = $2", institution, username
            )
            if user_id is None:
                raise PpuError(f"no user {username} at {institution}")
            ended = await revoke_sessions(conn, user_id)
            await audit(conn, None, "users_revoke", username, "ok", {"sessions_ended": ended}, "cli", institution)
            return ended

    click.echo(f"{asyncio.run(revoke())} session(s) of {username} of {institution} ended")
