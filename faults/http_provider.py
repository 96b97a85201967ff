"""A provider over HTTP inside a fault scenario: the PPU v3 simulator (strict), served in this process; the
scenario points a provider at it and runs our bridge, so hostile records reach the topic the bridge consumes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import uvicorn

from infra.processes import free_port
from providers.http_simulator import SimulatorConfig, create_simulator

SWITCH_ELECTRUM_ID = "8000000"


@dataclass
class Served:
    server: uvicorn.Server
    task: asyncio.Task[None]
    base_url: str

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 20)


async def serve_simulator(supports: str = r"07\d*[0-4]") -> Served:
    port = free_port()
    config = SimulatorConfig(None, None, supports=re.compile(supports), utility_name="Fault City")
    server = uvicorn.Server(uvicorn.Config(create_simulator(config), host="127.0.0.1", port=port, log_level="critical"))
    task = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(20):
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
    return Served(server, task, f"http://127.0.0.1:{port}")
