"""The committed Grafana dashboard is real: Debian's Prometheus server scrapes `ppu worker all` (as `make run` starts
it) under traffic, and every query of every panel, run against it, returns data. Grafana itself cannot run here.
Also: the compose stack wires the same files, scrapes every declared worker, and pins its images to the versions
the local stack runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from infra.postgres_launcher import ensure_installed
from infra.processes import free_port
from kernel.connections import started_producer
from kernel.settings import Settings
from tests.conftest import ROOT, cli_env
from tests.harness import System, eventually, seed_reference, supported_meters
from workers.registry import WORKERS

DASHBOARD = ROOT / "observability" / "grafana" / "dashboards" / "ppu.json"


def queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    # Grafana's $__rate_interval becomes a fixed window here (it is at least four scrape intervals there).
    return [(p["title"], t["expr"].replace("$__rate_interval", "30s")) for p in panels for t in p["targets"]]


@contextlib.contextmanager
def prometheus(tmp: Path, target: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is missing: `make test` installs it"
    config = tmp / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "ppu", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "prometheus.log").open("wb"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)


async def traffic(system: System, stop: asyncio.Event) -> None:
    """Purchases for known meters (decided at once, each with a routine lookup to p1), and p1's answers."""
    n = 0
    while not stop.is_set():
        await system.attempt(f"07{n % 50:08d}")
        for request in await system.requests("p1", 1, within=10):
            await system.respond(request, "supported")
        n += 1
        await asyncio.sleep(0.05)


def start_workers(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`ppu worker all`, as `make run` starts it."""
    cmd = [sys.executable, "-m", "ppu.cli", "worker", "all"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


async def test_every_panel_query_returns_data(
    settings: Settings, topics: list[str], db: asyncpg.Connection, tmp_path: Path
) -> None:
    await seed_reference(db)
    await supported_meters(db, "07", 50)
    port = free_port()
    workers = start_workers({**cli_env(settings), "PPU_METRICS_PORT": str(port)}, tmp_path / "workers.log")
    stop = asyncio.Event()
    assert settings.kafka_bootstrap_servers is not None
    try:
        with prometheus(tmp_path, f"127.0.0.1:{port}") as url:
            async with (
                started_producer(settings.kafka_bootstrap_servers) as producer,
                httpx.AsyncClient(base_url=url, timeout=10) as client,
            ):
                system = System(settings, producer)
                await system.publish("purchase_attempts", b"not json at all", "0700000000")  # one dead letter
                flowing = asyncio.ensure_future(traffic(system, stop))

                def answered(expr: str) -> Callable[[], Awaitable[Any]]:
                    async def check() -> Any:
                        try:  # Prometheus opens its port only once its storage is ready
                            r = await client.get("/api/v1/query", params={"query": expr})
                        except httpx.TransportError:
                            return False
                        return r.status_code == 200 and r.json()["data"]["result"]

                    return check

                try:
                    for title, expr in queries():
                        await eventually(answered(expr), within=60, what=f"data for {title!r}: {expr}")
                finally:
                    stop.set()
                    await flowing
                    await system.close()
    finally:
        workers.terminate()
        workers.wait(30)


def test_compose_wires_the_dashboard_scrapes_every_worker_and_pins_local_versions() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    scraped = yaml.safe_load((ROOT / "observability" / "prometheus.yml").read_text())["scrape_configs"][0]
    targets = set(scraped["static_configs"][0]["targets"])
    consumers = {f"{w.service}:9464" for w in WORKERS}
    assert targets == consumers, "Prometheus scrapes each declared worker's service, and nothing else"
    grafana = compose["grafana"]["volumes"]
    assert "./observability/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    version = subprocess.run(
        [shutil.which("prometheus") or "prometheus", "--version"], capture_output=True, text=True, check=True
    ).stdout
    local = re.search(r"version (\d+\.\d+\.\d+)", version)
    assert local and compose["prometheus"]["image"] == f"prom/prometheus:v{local[1]}"
    assert compose["postgres"]["image"] == f"postgres:{ensure_installed().parent.name}", "the local PostgreSQL major"
    assert all(":" in s["image"] and not s["image"].endswith(":latest") for s in compose.values() if "image" in s)
