"""Migrations apply once, in order, and refuse an applied migration that was edited."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from db.migrate import MIGRATIONS, discover, migrate
from kernel.errors import PpuError


async def test_migrating_twice_changes_nothing(db: asyncpg.Connection) -> None:
    # `db` comes from the migrated template: every migration is recorded already.
    recorded = await db.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in recorded] == [m.version for m in discover()]
    tables = await db.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    assert await migrate(db) == []
    assert await db.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == tables


async def test_fresh_database_gets_every_migration(db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute("CREATE SCHEMA fresh; SET search_path TO fresh, public")
    applied = await migrate(db)
    assert applied == [m.version for m in discover()]
    assert await db.fetchval("SELECT to_regclass('fresh.outbox') IS NOT NULL")


async def test_edited_applied_migration_is_refused(db: asyncpg.Connection, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    await db.execute("CREATE SCHEMA edited; SET search_path TO edited, public")
    await migrate(db, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(PpuError, match="edited after it was applied"):
        await migrate(db, folder)


async def test_failed_migration_leaves_nothing_behind(db: asyncpg.Connection, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (x int);")
    (folder / "0002_broken.sql").write_text("CREATE TABLE b (x int); SELECT no_such_function();")
    await db.execute("CREATE SCHEMA broken; SET search_path TO broken")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(db, folder)
    assert await db.fetchval("SELECT to_regclass('broken.a') IS NOT NULL")
    assert await db.fetchval("SELECT to_regclass('broken.b') IS NULL"), "0002 rolled back as a whole"
    assert await db.fetchval("SELECT max(version) FROM broken.schema_migrations") == 1


async def test_tenancy_migration_keeps_an_installs_data(db: asyncpg.Connection, tmp_path: Path) -> None:
    """0007 on a database that has institutions, preferences, marks and resets (not only on an empty one)."""
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    for m in sorted(MIGRATIONS.glob("*.sql")):
        if int(m.name[:4]) < 7:
            before.joinpath(m.name).write_text(m.read_text())
        if int(m.name[:4]) <= 7:
            after.joinpath(m.name).write_text(m.read_text())
    await db.execute("CREATE SCHEMA upgraded; SET search_path TO upgraded, public")
    await migrate(db, before)
    await db.execute(
        """INSERT INTO institutions VALUES ('bank', 'Bank'), ('wallet', 'Wallet');
           INSERT INTO providers (provider_id, name) VALUES ('pa', 'A'), ('pb', 'B');
           INSERT INTO institution_providers VALUES ('bank', 'pa'), ('bank', 'pb'), ('wallet', 'pa');
           INSERT INTO utilities VALUES ('u', 'U');
           INSERT INTO utility_routing_preferences VALUES ('u', 'pa', 'ranked', 1, 1), ('u', 'pb', 'excluded', NULL, 0);
           INSERT INTO meters (meter_number, marked_for_rebroadcast, marked_by, marked_by_institution, marked_at,
                               preferred_provider_id) VALUES ('0401', true, 'olga', 'bank', now(), 'pa');
           INSERT INTO meter_support (meter_number, provider_id, status, unconfirmed_since)
               VALUES ('0401', 'pb', 'unconfirmed', now())"""
    )
    assert await migrate(db, after) == [7]
    prefs = await db.fetch("SELECT institution_id, provider_id, kind FROM utility_routing_preferences ORDER BY 1, 2")
    assert [tuple(r) for r in prefs] == [
        ("bank", "pa", "ranked"),
        ("bank", "pb", "excluded"),
        ("wallet", "pa", "ranked"),
    ]
    assert await db.fetchval("SELECT marked_by FROM rebroadcast_marks WHERE institution_id = 'bank'") == "olga"
    assert await db.fetchval("SELECT count(*) FROM support_resets WHERE institution_id = 'bank'") == 1
    assert [
        tuple(r) for r in await db.fetch("SELECT institution_id, provider_id FROM meter_preferences ORDER BY 1")
    ] == [
        ("bank", "pa"),
        ("wallet", "pa"),
    ]
