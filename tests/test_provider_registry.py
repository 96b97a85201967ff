"""`ppu providers add|list|enable|disable`: registering creates the provider's topics; disabling stops lookups."""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg

from infra.topic_admin import admin_client
from kernel.settings import Settings
from tests.conftest import run_ppu
from tests.harness import PROVIDERS, eventually, running, seed_reference


async def ppu(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_ppu, settings, *args)


async def test_add_list_disable_enable(settings: Settings, topics: list[str], db: asyncpg.Connection) -> None:
    await seed_reference(db)
    added = await ppu(
        settings, "providers", "add", "p9", "--name", "Provider Nine", "--electrum-id", "2009", "--institution", "i1"
    )
    assert added.returncode == 0, added.stderr
    assert f"{settings.topic_prefix}ppu.lookup-requests.p9.v1: created" in added.stdout
    assert settings.kafka_bootstrap_servers is not None
    async with admin_client(settings.kafka_bootstrap_servers) as client:
        assert f"{settings.topic_prefix}ppu.lookup-requests.p9.dlq.v1" in await client.list_topics()
    bad = await ppu(settings, "providers", "add", "p8", "--name", "Eight", "--electrum-id", "2008", "--mode", "http")
    assert bad.returncode == 2 and "--base-url" in bad.stderr
    unnumbered = await ppu(settings, "providers", "add", "p8", "--name", "Eight")
    assert unnumbered.returncode == 2 and "--electrum-id" in unnumbered.stderr
    unknown = await ppu(
        settings, "providers", "add", "p8", "--name", "Eight", "--electrum-id", "2008", "--institution", "x"
    )
    assert unknown.returncode == 1 and "unknown institution x" in unknown.stderr
    assert (await ppu(settings, "providers", "disable", "p9")).returncode == 0
    listing = (await ppu(settings, "providers", "list")).stdout
    assert any(line.startswith("p9") and "2009" in line and "disabled" in line for line in listing.splitlines())
    assert (await ppu(settings, "providers", "disable", "nope")).returncode == 1

    async with running(settings) as system:
        await system.attempt("0401000040")
        await eventually(lambda: db.fetchval("SELECT count(*) FROM lookups"), what="lookups")
        asked = {r["provider_id"] for r in await db.fetch("SELECT provider_id FROM lookups")}
        assert asked == set(PROVIDERS), "a disabled provider gets no lookups"
        assert (await ppu(settings, "providers", "enable", "p9")).returncode == 0
        await system.attempt("0401000041")
        await eventually(lambda: db.fetchval("SELECT count(*) FROM lookups WHERE provider_id = 'p9'"), what="p9")
    audit = [
        (r["action"], r["target"], r["outcome"]) for r in await db.fetch("SELECT * FROM audit_log ORDER BY audit_id")
    ]
    assert audit == [
        ("providers_add", "p9", "ok"),
        ("providers_disable", "p9", "ok"),
        ("providers_disable", "nope", "unknown provider"),
        ("providers_enable", "p9", "ok"),
    ]
