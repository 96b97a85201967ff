"""Schemathesis against the console's OpenAPI document: no 5xx, no unauthenticated access, no other
institution's data. The console runs as its own process (these tests are synchronous HTTP clients)."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.core.result import Ok

from console.app import create_app
from infra.processes import free_port
from kernel.connections import Endpoints
from kernel.settings import Settings as PpuSettings
from tests.conftest import ROOT, TEMPLATE_DB
from tests.harness import PASSWORD, seed_reference

OPEN = {"/api/v1/session", "/api/v1/openapi.json"}  # what anyone may call


@pytest.fixture(scope="module")
def console_url(endpoints: Endpoints, template_db: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = endpoints.database_url.rsplit("/", 1)[0] + "/" + name

    async def setup() -> None:
        admin = await asyncpg.connect(endpoints.database_url)
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        await admin.close()
        conn = await asyncpg.connect(url)
        await seed_reference(conn)
        await conn.execute("INSERT INTO meters (meter_number) VALUES ('0401000555')")
        await conn.execute("INSERT INTO utilities VALUES ('u1', 'Utility One')")
        await conn.close()

    asyncio.run(setup())
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap_servers,
        "DATABASE_URL": url,
        "PPU_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "PPU_CONSOLE_SECRET_KEY": secrets.token_urlsafe(32),
        "PPU_CONSOLE_COMMAND_WAIT_SECONDS": "0",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppu.cli", "console", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)


def _login(base: str, institution: str, username: str) -> tuple[dict[str, str], dict[str, str]]:
    s = requests.Session()
    token = s.get(f"{base}/api/v1/session", timeout=10).json()["csrf_token"]
    r = s.post(
        f"{base}/api/v1/session",
        json={"institution": institution, "username": username, "password": PASSWORD},
        headers={"X-CSRF-Token": token},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return dict(s.cookies), {"X-CSRF-Token": r.json()["csrf_token"]}


def operations() -> list[Any]:
    """Every operation of the console's OpenAPI document (built without starting anything)."""
    app = create_app(PpuSettings(PPU_CONSOLE_SECRET_KEY=SecretStr("x" * 32)))
    schema = schemathesis.openapi.from_dict(app.openapi())
    results = list(schema.get_all_operations())
    found = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(found) == len(results) >= 8, "every operation of the document loads"
    return found


def test_no_server_errors_and_no_other_institutions_data(console_url: str) -> None:
    cookies, headers = _login(console_url, "i2", "zed")  # an admin of the institution that only has p1
    calls = 0
    for operation in operations():

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=console_url, cookies=cookies, headers=headers, timeout=20)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
            assert "$argon2" not in response.text
            if response.status_code < 300 and case.path in (
                "/api/v1/meters/{meter_number}",
                "/api/v1/providers/health",
            ):
                body = response.json()
                providers = body["providers"] if isinstance(body, dict) else body
                assert {p["provider_id"] for p in providers} <= {"p1"}, "another institution's providers leaked"

        call()
    assert calls >= 50, "schemathesis generated cases for every operation"


def test_nothing_without_a_session(console_url: str) -> None:
    for operation in operations():

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            response = case.call(base_url=console_url, timeout=20)
            assert response.status_code < 500
            if case.path not in OPEN:
                assert response.status_code in (401, 403, 422), f"{case.method} {case.path}: {response.status_code}"

        call()
