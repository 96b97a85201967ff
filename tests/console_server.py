"""The console served over real HTTP (uvicorn, in this process) for the console tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from console.app import create_app
from infra.processes import free_port
from kernel.settings import Settings
from tests.harness import PASSWORD


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, log_level: str = "warning", tls: tuple[str, str] | None = None) -> AsyncIterator[str]:
    """Any ASGI app (the console, a provider simulator) over real HTTP on a free loopback port; yields its URL.
    `tls`: (certificate chain file, key file) to serve HTTPS."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=1,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
    )
    task = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(20):
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The console; yields (base URL, session secret)."""
    secret = secrets.token_urlsafe(32)
    async with serve_app(create_app(settings.model_copy(update={"console_secret_key": SecretStr(secret)}))) as url:
        yield url, secret


async def login(
    client: httpx.AsyncClient, username: str, institution: str = "i1", password: str = PASSWORD
) -> httpx.Response:
    token = (await client.get("/api/v1/session")).json()["csrf_token"]
    return await client.post(
        "/api/v1/session",
        headers={"X-CSRF-Token": token},
        json={"institution": institution, "username": username, "password": password},
    )
