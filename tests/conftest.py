"""Session-wide real servers; per test a fresh database (from a migrated template) and a topic prefix."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest

from db.migrate import migrate
from db.partitions import maintain
from infra.topic_admin import admin_client, apply
from kernel.connections import Endpoints, connect
from kernel.settings import Settings
from tests.bridging import CREDENTIALS_ENV, PASSWORD, USER
from tests.harness import System, running, seed_reference
from tests.servers import servers

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "ppu_template"
# The UTC day the template's history partitions run from (db/partitions.py): a run that crosses midnight brings the
# template to the new day before it copies it, as a database migrated that day would be.
_template_day: dict[str, date] = {}


SWITCH_ELECTRUM_ID = "9100001"  # the switch's Electrum institution id in the tests
COMMAND_SIGNING_KEY = secrets.token_urlsafe(32)  # per test run, like `ppu run` makes one


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    state_dir = ROOT / ".local" / f"test-stack-{os.getpid()}"
    with servers(state_dir, Settings().kafka_version) as found:
        yield found


def _db_url(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
async def template_db(endpoints: Endpoints) -> str:
    admin = await asyncpg.connect(endpoints.database_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    conn = await connect(_db_url(endpoints.database_url, TEMPLATE_DB))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    _template_day[TEMPLATE_DB] = datetime.now(UTC).date()
    return TEMPLATE_DB


async def _template_of_today(endpoints: Endpoints, template_db: str) -> None:
    today = datetime.now(UTC).date()
    if _template_day.get(template_db, today) == today:
        return
    conn = await connect(_db_url(endpoints.database_url, template_db))
    try:
        await maintain(conn, drop=False)
    finally:
        await conn.close()
    _template_day[template_db] = today


async def new_database(endpoints: Endpoints, template_db: str) -> str:
    """A database of its own, already migrated: its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    await _template_of_today(endpoints, template_db)
    admin = await asyncpg.connect(endpoints.database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    finally:
        await admin.close()
    return _db_url(endpoints.database_url, name)


async def drop_database(endpoints: Endpoints, url: str) -> None:
    admin = await asyncpg.connect(endpoints.database_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def database_url(endpoints: Endpoints, template_db: str) -> AsyncIterator[str]:
    """A database of this test's own, already migrated."""
    url = await new_database(endpoints, template_db)
    yield url
    await drop_database(endpoints, url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings(endpoints: Endpoints, database_url: str, topic_prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=endpoints.kafka_bootstrap_servers,
        DATABASE_URL=database_url,
        PPU_TOPIC_PREFIX=topic_prefix,
        PPU_STATE_DIR=tmp_path,
        PPU_SWITCH_INSTITUTION_ID=SWITCH_ELECTRUM_ID,
        PPU_BRIDGE_RELOAD_SECONDS=0.5,
        PPU_COMMAND_SIGNING_KEY=COMMAND_SIGNING_KEY,
    )


@pytest.fixture
async def topics(settings: Settings) -> list[str]:
    """This test's own copy of every topic (three providers for the templated ones)."""
    assert settings.kafka_bootstrap_servers is not None
    async with admin_client(settings.kafka_bootstrap_servers) as client:
        return await apply(client, settings.topic_prefix, ["p1", "p2", "p3"])


def run_ppu(settings: Settings, *args: str, drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`ppu ARGS` as a user runs it, against this test's servers (`drop`: variables left unset)."""
    env = {k: v for k, v in cli_env(settings).items() if k not in drop}
    return subprocess.run(
        [sys.executable, "-m", "ppu.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PPU_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers or "",
        DATABASE_URL=settings.database_url or "",
        PPU_TOPIC_PREFIX=settings.topic_prefix,
        PPU_STATE_DIR=str(settings.state_dir),
        PPU_SWITCH_INSTITUTION_ID=SWITCH_ELECTRUM_ID,
        PPU_COMMAND_SIGNING_KEY=COMMAND_SIGNING_KEY,
    )
    return env


@pytest.fixture
async def bridge_system(
    settings: Settings, topics: list[str], db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[System]:
    await seed_reference(db)
    await db.execute("INSERT INTO utilities (utility_id, name, electrum_id) VALUES ('river', 'Riverside', '4001')")
    monkeypatch.setenv(CREDENTIALS_ENV, f"{USER}:{PASSWORD}")
    async with running(settings, names=()) as s:  # only the producer: the bridge is what runs
        yield s
