"""A throwaway PostgreSQL cluster from Debian's server package: install when missing, initdb, pg_ctl.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to, and runs as, the `postgres`
system user that the package creates. The superuser password is random per cluster, kept in the data
directory's parent with mode 600: there is no default secret.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infra.processes import free_port, port_accepts, port_is_free, wait_until
from kernel.errors import PpuError

DB_USER = "ppu"
DB_NAME = "ppu"


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_installed() -> Path:
    """The server binaries; installs Debian's `postgresql` package when they are missing."""
    bindir = _bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PpuError("PostgreSQL server is missing: install Debian's `postgresql` package, or set DATABASE_URL")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "postgresql", "postgresql-contrib"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise PpuError(f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[-300:]}")
    bindir = _bindir()
    if bindir is None:
        raise PpuError("installed `postgresql` but found no initdb under /usr/lib/postgresql")
    return bindir


def _run_as() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def usable_data_root(preferred: Path) -> Path:
    """`preferred` when the cluster's user can reach it, else a private folder under the temp dir."""
    if os.geteuid() != 0:
        return preferred
    preferred.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run([*_run_as(), "test", "-x", str(preferred.resolve())], check=False)
    if probe.returncode == 0:
        return preferred
    # The checkout sits where the postgres user cannot enter (a 700 home, say).
    tag = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ppu-postgres-{tag}"


@dataclass
class PostgresCluster:
    root: Path
    port: int
    password: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = DB_NAME) -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{database}"


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def start(root: Path, port: int | None = None, ephemeral: bool = False, timeout: float = 60.0) -> PostgresCluster:
    bindir = ensure_installed()
    root = usable_data_root(root.resolve())
    root.mkdir(parents=True, exist_ok=True)
    _chown(root)
    secret_file = root / "superuser-password"
    if not (root / "data" / "PG_VERSION").exists():
        secret_file.write_text(secrets.token_urlsafe(24))
        secret_file.chmod(0o600)
        _chown(secret_file)
        init = subprocess.run(
            [
                *_run_as(),
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                DB_USER,
                f"--pwfile={secret_file}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            raise PpuError(f"initdb failed: {init.stderr.strip()[-300:]}")
    port_file = root / "port"
    port = port or (int(port_file.read_text()) if port_file.exists() else free_port())
    cluster = PostgresCluster(root, port, secret_file.read_text().strip())
    if port_accepts(port) and (root / "data" / "postmaster.pid").exists():
        return cluster  # already running from an earlier `stack up`
    if not port_is_free(port):
        raise PpuError(f"port {port} on 127.0.0.1 is taken; stop what uses it or remove {port_file}")
    port_file.write_text(str(port))
    pg_ctl_start(bindir, root, port, timeout, "fsync=off -c full_page_writes=off" if ephemeral else None)
    return cluster


def _shared_buffers_mb() -> int:
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not a POSIX system that reports it
        return 128
    return max(128, min(memory // 4 // 2**20, 2048))


def pg_ctl_start(bindir: Path, root: Path, port: int, timeout: float, extra: str | None = None) -> None:
    """`pg_ctl start` of the data directory under `root` on a loopback port; returns once it accepts."""
    # TCP on loopback only; no Unix socket, whose path length limit a deep checkout could exceed.
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k '' -c max_connections=200"
    # Loaded, counting nothing until a database asks for it (`ppu bench --only profile` does): a restart is
    # needed to load it, turning it on is not.
    options += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=none"
    # Sized like a production server rather than PostgreSQL's 128 MB default: a quarter of the memory, at most 2 GB,
    # so months of history keep their indexes' hot pages in the database's own cache (bench/history.py).
    options += f" -c shared_buffers={_shared_buffers_mb()}MB -c max_wal_size=4GB"
    if extra:  # test clusters: losing data on an OS crash is fine, speed matters
        options += f" -c {extra}"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"), "-o", options]
    started = subprocess.run(
        [*_run_as(), *pg_ctl, "-w", "-t", str(int(timeout)), "start"], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        raise PpuError(f"PostgreSQL did not start: {started.stdout.strip()[-200:]} (see {root / 'server.log'})")
    wait_until(lambda: port_accepts(port), timeout, "PostgreSQL")


def stop(root: Path) -> None:
    bindir = _bindir()
    root = usable_data_root(root.resolve())
    if bindir is None or not (root / "data" / "postmaster.pid").exists():
        return
    subprocess.run(
        [*_run_as(), str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"],
        capture_output=True,
        check=False,
    )
