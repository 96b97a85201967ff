"""Migrations apply once, in order, and refuse an applied migration that was edited."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from db.migrate import MIGRATIONS, discover, migrate
from ppu.errors import PpuError


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
