"""A benchmark's own database, topics and providers on the local (or configured) broker and database, and the
worker processes it measures."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from db.migrate import migrate
from infra.processes import stop_children
from infra.topic_admin import admin_client, apply, partition_counts
from kernel.connections import connect, endpoints
from kernel.settings import Settings
from kernel.topics import profile

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = [f"bp{i}" for i in range(1, 6)]
INSTITUTION = "bench-bank"


@dataclass
class BenchEnv:
    settings: Settings
    database_url: str

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka_bootstrap_servers is not None
        return self.settings.kafka_bootstrap_servers

    @property
    def signing_key(self) -> str:
        assert self.settings.command_signing_key is not None
        return self.settings.command_signing_key.get_secret_value()

    async def db(self) -> asyncpg.Connection:
        return await connect(self.database_url)

    @property
    def database(self) -> str:
        """Its database's name (`other_database` made the URL)."""
        return self.database_url.partition("?")[0].rsplit("/", 1)[1]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "PPU_TOPIC_PREFIX": self.settings.topic_prefix,
            "PPU_LOG_LEVEL": "WARNING",
            "PPU_COMMAND_SIGNING_KEY": self.signing_key,
            **extra,
        }


@contextlib.asynccontextmanager
async def server_admin(url: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the configured server's own database (or `url`), to make and drop the bench's databases."""
    admin = await asyncpg.connect(url or endpoints(Settings()).database_url)
    try:
        yield admin
    finally:
        await admin.close()


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    """Sessions still connected to it are ended: a step's workers may not have gone yet."""
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def other_database(url: str, name: str) -> str:
    """The same server(s) and options (a multi-host URL keeps its target_session_attrs), another database."""
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


async def prepare(tag: str, template: str | None = None, topics: bool = True) -> BenchEnv:
    """A fresh database (migrated) and topic prefix named after `tag`, with five providers and an institution; or
    a copy of `template`, a database `prepare` made before (bench/history.py). `topics`: create the topics too."""
    base = Settings()
    where = endpoints(base)
    name = f"bench_{tag}"
    async with server_admin(where.database_url) as admin:
        await drop_database(admin, name)
        if template is None:
            await admin.execute(f"CREATE DATABASE {name}")
        else:  # a file copy (not the whole template through the WAL), flushed before anything is measured
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY = FILE_COPY")
            await admin.execute("CHECKPOINT")
    url = other_database(where.database_url, name)
    if template is None:
        await _reference(url)
    settings = base.model_copy(
        update={
            "kafka_bootstrap_servers": where.kafka_bootstrap_servers,
            "database_url": url,
            "topic_prefix": f"{tag}.",
            # Made per run, like `ppu run` does: commands sent by the fault scenarios are signed with it.
            "command_signing_key": base.command_signing_key or SecretStr(secrets.token_urlsafe(32)),
        }
    )
    return await _with_topics(settings, url) if topics else BenchEnv(settings, url)


async def retire(env: BenchEnv) -> None:
    """Drop a step's database once nothing later reads it (its topics go with the next run's `drop_previous_runs`).
    Left behind, autovacuum worked through a warm-up's tens of thousands of fresh rows while a later step was
    measured: two of four paced runs' worst seconds (73 and 66 ms against a median second of 31) came while it
    analysed the paced warm-up's database, a CPU the measured flow did not use otherwise on 2 cores."""
    async with server_admin() as admin:
        await drop_database(admin, env.database)


async def prepare_topics(env: BenchEnv, suffix: str) -> BenchEnv:
    """The same database under topics of its own (prefix + suffix)."""
    settings = env.settings.model_copy(update={"topic_prefix": f"{env.settings.topic_prefix}{suffix}."})
    return await _with_topics(settings, env.database_url)


async def _with_topics(settings: Settings, url: str) -> BenchEnv:
    """Every topic of topics.yaml under the settings' prefix, for the bench's providers."""
    assert settings.kafka_bootstrap_servers is not None
    async with admin_client(settings.kafka_bootstrap_servers) as client:
        await apply(client, settings.topic_prefix, PROVIDERS, profile(settings.topics_profile))
    return BenchEnv(settings, url)


# The topics bench, soak and fault runs make (their prefixes: bench/run.py, bench/soak.py, faults/scenarios.py; the
# faust peer's own), never the deployment's. Left to pile up, a local broker held 15,000 partitions: it took more
# than a minute to start, and every run shared the machine with them.
# A step's own topics add a number to its run's tag (the warm-up's rounds "w0"…, the CPU steps' "c0"…, the
# scale-out pairs' "o0", "t0"): missed by this pattern once, they piled up at ~400 partitions a `make bench`.
RUN_TOPICS = re.compile(r"^(?:[bk]\d{10}[a-z]?\d*|f[0-9a-f]{8}|bpeer|bsmoke)\.")


async def drop_previous_runs() -> None:
    """Every database and topic an earlier bench, soak or fault run left (kept for a look after a run; the next run
    removes them: a soak's database is gigabytes). The history template is kept: it is what saves the next run
    minutes (bench/history.py drops one the migrations made stale)."""
    settings = Settings()
    where = endpoints(settings)
    async with server_admin(where.database_url) as admin:
        for name in await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%' AND datname NOT LIKE 'bench\\_history\\_%'"
        ):
            await drop_database(admin, name["datname"])
    async with admin_client(where.kafka_bootstrap_servers) as client:
        stale = sorted(t for t in await client.list_topics() if RUN_TOPICS.match(t))
        for i in range(0, len(stale), 200):  # a bounded request each
            await client.delete_topics(stale[i : i + 200])


async def broker_partitions() -> int:
    """Partitions the cluster holds, every topic's, recorded with a run's results: runs' topics once piled up unseen
    (3,434 partitions on the local broker). Three thousand of them made no difference this machine could show to the
    paced latency (README, stop 45), but a run says what it shared the broker with."""
    async with admin_client(endpoints(Settings()).kafka_bootstrap_servers) as client:
        return sum(count for count, _ in (await partition_counts(client, await client.list_topics())).values())


async def _reference(url: str) -> None:
    conn = await connect(url)
    try:
        await migrate(conn)
        # Electrum ids too: a scenario may put one provider behind the HTTP bridge, whose bodies carry them.
        await conn.execute("INSERT INTO institutions VALUES ($1, 'Bench Bank', '8000001')", INSTITUTION)
        await conn.executemany(
            "INSERT INTO providers (provider_id, name, electrum_id) VALUES ($1, $1, $2)",
            [(p, f"810000{n}") for n, p in enumerate(PROVIDERS)],
        )
        await conn.executemany(
            "INSERT INTO institution_providers VALUES ($1, $2)", [(INSTITUTION, p) for p in PROVIDERS]
        )
    finally:
        await conn.close()


def plan_cache_mode() -> str:
    """How the workers started here plan their statements: read as they read it (PPU_DB_PLAN_CACHE_MODE, or the
    default)."""
    return Settings().db_plan_cache_mode


def start_workers(env: BenchEnv, *names: str, extra: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
    """One process per name; `extra`: environment for them all (settings to compare)."""
    return [
        subprocess.Popen(
            [sys.executable, "-m", "ppu.cli", "worker", n],
            cwd=ROOT,
            env=env.env(**(extra or {})),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in names
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    stop_children(procs)
