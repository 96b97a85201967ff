"""A PostgreSQL streaming-replication standby of the local cluster (`ppu stack up --standby`), and the failover
that promotes it (`ppu stack failover`).

Replication is synchronous (`synchronous_standby_names` names the standby): a commit the workers saw is on the
standby too, so a failover loses no committed transaction — a consumer's stored offsets, its state and its outbox
rows move together. (Asynchronous replication could lose a transaction whose outbox rows were already published;
reprocessing would then publish a second, different decision.) The workers connect with a multi-host
`DATABASE_URL` and `target_session_attrs=read-write`, so they follow whichever server is the primary.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from infra.postgres_launcher import (
    DB_NAME,
    DB_USER,
    PostgresCluster,
    _chown,
    _run_as,
    ensure_installed,
    pg_ctl_start,
    usable_data_root,
)
from infra.processes import free_port, port_accepts
from kernel.errors import PpuError

APPLICATION_NAME = "ppu_standby"


def _pg(*args: str, env: dict[str, str] | None = None, what: str) -> None:
    done = subprocess.run([*_run_as(), *args], capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise PpuError(f"{what} failed: {(done.stderr or done.stdout).strip()[-300:]}")


def _to(server: PostgresCluster) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(server.port), "-U", DB_USER]


def start_standby(primary: PostgresCluster, root: Path, timeout: float = 60.0) -> PostgresCluster:
    """A base backup of `primary` into `root`, started as its synchronous standby (reused when already running)."""
    bindir = ensure_installed()
    root = usable_data_root(root.resolve())
    port_file = root / "port"
    if (root / "data" / "PG_VERSION").exists() and port_file.exists() and port_accepts(int(port_file.read_text())):
        return PostgresCluster(root, int(port_file.read_text()), primary.password)
    root.mkdir(parents=True, exist_ok=True)
    _chown(root)
    env = {**os.environ, "PGPASSWORD": primary.password}
    if not (root / "data" / "PG_VERSION").exists():
        _pg(
            str(bindir / "pg_basebackup"),
            *_to(primary),
            "-D",
            str(root / "data"),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            f"--dbname=application_name={APPLICATION_NAME}",
            env=env,
            what="pg_basebackup",
        )
    port = int(port_file.read_text()) if port_file.exists() else free_port()
    port_file.write_text(str(port))
    pg_ctl_start(bindir, root, port, timeout)
    # Synchronous from now on: the primary's commits wait until the standby has them.
    _pg(
        str(bindir / "psql"),
        *_to(primary),
        "-d",
        "postgres",
        "-c",
        f"ALTER SYSTEM SET synchronous_standby_names = '{APPLICATION_NAME}'",
        "-c",
        "SELECT pg_reload_conf()",
        env=env,
        what="making replication synchronous",
    )
    return PostgresCluster(root, port, primary.password)


def multi_host_url(primary: PostgresCluster, standby: PostgresCluster, database: str = DB_NAME) -> str:
    """Both servers; a connection goes to the one that accepts writes."""
    hosts = f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
    return f"postgresql://{DB_USER}:{primary.password}@{hosts}/{database}?target_session_attrs=read-write"


def failover(primary_root: Path, standby_root: Path) -> None:
    """The primary stopped at once (as a crash would), the standby promoted to primary."""
    bindir = ensure_installed()
    subprocess.run(
        [
            *_run_as(),
            str(bindir / "pg_ctl"),
            "-D",
            str(usable_data_root(primary_root) / "data"),
            "-m",
            "immediate",
            "stop",
        ],
        capture_output=True,
        check=False,
    )
    _pg(str(bindir / "pg_ctl"), "-D", str(usable_data_root(standby_root) / "data"), "-w", "promote", what="promoting")
