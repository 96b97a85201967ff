"""A provider over HTTP inside a fault scenario: the PPU v3 simulator (strict, in this process) and our bridge
(its own process), so that hostile records reach the lookup-request topic the bridge consumes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

from infra.processes import free_port
from providers.http_simulator import SimulatorConfig, create_simulator

if TYPE_CHECKING:
    from faults.scenarios import Run

SWITCH_ELECTRUM_ID = "8000000"


@dataclass
class Served:
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 20)


async def serve_http_provider(run: Run, provider: str, supports: str = r"07\d*[0-4]") -> Served:
    port = free_port()
    config = SimulatorConfig(None, None, supports=re.compile(supports), utility_name="Fault City")
    server = uvicorn.Server(uvicorn.Config(create_simulator(config), host="127.0.0.1", port=port, log_level="critical"))
    task = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(20):
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
    conn = await run.env.db()
    try:
        await conn.execute(
            """UPDATE providers SET integration_mode = 'http', base_url = $2, credentials_ref = NULL
               WHERE provider_id = $1""",
            provider,
            f"http://127.0.0.1:{port}",
        )
    finally:
        await conn.close()
    run.env_for["bridge"] = {"PPU_SWITCH_INSTITUTION_ID": SWITCH_ELECTRUM_ID}
    run.start("bridge", "provider-bridge", ("--provider", provider))
    return Served(server, task)
