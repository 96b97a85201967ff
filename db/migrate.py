"""`ppu db migrate`: apply numbered SQL migrations once each, in order, each in its own transaction.

Applied versions are recorded with a SHA-256 of their text; an applied migration whose file changed since is
refused rather than silently diverging. An advisory lock serialises concurrent migrators.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from db.partitions import maintain
from db.support_backfill import fill_support_summaries
from kernel.errors import PpuError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK_KEY = 7_413_001  # arbitrary, fixed: the advisory lock that serialises migrators


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path = MIGRATIONS) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", path.name)
        if match is None:
            raise PpuError(f"migration file name {path.name} is not NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise PpuError("two migrations share a version number")
    return found


async def migrate(conn: asyncpg.Connection, folder: Path = MIGRATIONS, before: int | None = None) -> list[int]:
    """Applies what is pending; returns the versions applied now. `before`: only the migrations older than that
    version, and none of the work after them (partitions, backfills): an install as an earlier release left it."""
    migrations = [m for m in discover(folder) if before is None or m.version < before]
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
        done = []
        for m in migrations:
            if m.version in applied:
                if applied[m.version]["checksum"] != m.checksum:
                    raise PpuError(
                        f"migration {m.version:04d}_{m.name} was edited after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            done.append(m.version)
        if folder == MIGRATIONS and before is None:
            # The history's partitions from today on, so that a new database writes none to DEFAULT partitions.
            await maintain(conn, drop=False)
            await fill_support_summaries(conn)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
