"""The console served over real HTTP (uvicorn, in this process) for the console tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import httpx
import uvicorn
from pydantic import SecretStr

from console.app import create_app
from infra.processes import free_port
from ppu.settings import Settings
from tests.harness import PASSWORD


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Yields (base URL, session secret)."""
    secret = secrets.token_urlsafe(32)
    app = create_app(settings.model_copy(update={"console_secret_key": SecretStr(secret)}))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
    )
    task = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(20):
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", secret
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def login(
    client: httpx.AsyncClient, username: str, institution: str = "i1", password: str = PASSWORD
) -> httpx.Response:
    token = (await client.get("/api/v1/session")).json()["csrf_token"]
    return await client.post(
        "/api/v1/session",
        headers={"X-CSRF-Token": token},
        json={"institution": institution, "username": username, "password": password},
    )
