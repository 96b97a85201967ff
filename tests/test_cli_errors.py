"""Every CLI failure is one readable line and a non-zero exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.processes import free_port
from tests.conftest import ROOT


def _ppu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "ppu.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _one_line_failure(done: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("ppu: ") and needle in lines[0], lines[0]


def test_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://ppu:x@127.0.0.1:{free_port()}/ppu"
    _one_line_failure(
        _ppu("db", "migrate", env={"DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": "x:1"}),
        1,
        "cannot reach PostgreSQL",
    )


def test_unreachable_kafka(tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
    }
    _one_line_failure(_ppu("topics", "check", "--provider", "p1", env=env), 1, "cannot reach Kafka")


def test_no_stack_and_no_environment(tmp_path: Path) -> None:
    _one_line_failure(_ppu("db", "migrate", env={"PPU_STATE_DIR": str(tmp_path)}), 1, "run `ppu stack up`")


def test_bad_arguments() -> None:
    _one_line_failure(_ppu("db", "frobnicate"), 2, "No such command")
    _one_line_failure(_ppu("contracts", "export", "--nope"), 2, "--nope")


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "PPU_STATE_DIR": str(tmp_path / "state")}
    _one_line_failure(_ppu("stack", "up", env=env), 1, "Java 17 or newer is needed")


def test_port_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        (tmp_path / "kafka").mkdir()
        (tmp_path / "kafka" / "ports.json").write_text(f'{{"port": {port}, "controller_port": {free_port()}}}')
        _one_line_failure(_ppu("stack", "up", env={"PPU_STATE_DIR": str(tmp_path)}), 1, f"port {port}")


def test_workers_log_library_warnings_that_one_shot_commands_silence() -> None:
    import logging

    from kernel.logs import configure_for_command, configure_for_worker

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    libraries = {name: logging.getLogger(name).level for name in ("aiokafka", "kafka", "asyncpg")}
    try:
        configure_for_command()
        assert not logging.getLogger("aiokafka.consumer.group_coordinator").isEnabledFor(logging.CRITICAL)
        configure_for_worker("INFO")
        for name in ("aiokafka.consumer.group_coordinator", "asyncpg.pool"):
            assert logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, was in libraries.items():
            logging.getLogger(name).setLevel(was)
