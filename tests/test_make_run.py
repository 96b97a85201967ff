"""`ppu run` (what `make run` calls), as a newcomer meets it: the banner comes once the console answers, and every
command it prints succeeds the moment it is printed, showing the state the banner says."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import httpx

from infra.processes import free_port
from kernel.settings import Settings
from tests.conftest import ROOT, cli_env, run_ppu


def read_until_ready(proc: subprocess.Popen[str], seconds: float) -> str:
    """Its output up to the `ready` line (read by a thread: a selector misses lines already in the pipe's buffer)."""
    assert proc.stdout is not None
    stdout, lines = proc.stdout, queue.Queue[str]()

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    out, deadline = "", time.monotonic() + seconds
    while not re.search(r"^ready\s", out, re.M):
        assert time.monotonic() < deadline and proc.poll() is None, f"no banner:\n{out}"
        with contextlib.suppress(queue.Empty):
            out += lines.get(timeout=1)
    return out


def test_the_banner_commands_answer_at_once(settings: Settings, topics: list[str]) -> None:
    taken = free_port()
    env = {k: v for k, v in cli_env(settings).items() if k != "PPU_CONSOLE_PORT"}
    with subprocess.Popen(
        [sys.executable, "-m", "ppu.cli", "run", "--rate", "5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            banner = read_until_ready(proc, 150)
            assert "not ready in time" not in banner, banner
            console = re.search(r"^console\s+(http://\S+?)/\s", banner, re.M)
            assert console is not None, banner
            assert not console[1].endswith(":8080") or taken == 8080, "a free port, not a fixed one"
            # The console answers when the banner says so, not 12 s later.
            assert httpx.get(f"{console[1]}/login", timeout=5).status_code == 200
            metrics = re.search(r"^metrics\s+(http://\S+)", banner, re.M)
            assert metrics is not None and "ppu_" in httpx.get(metrics[1], timeout=5).text

            tried = re.findall(r"^try\s+\.venv/bin/ppu (.+)$", banner, re.M)
            assert len(tried) == 4, banner
            shown = {}
            for command in tried:
                done = run_ppu(settings, *command.split())
                assert done.returncode == 0, f"{command}: {done.stderr}"
                shown[command] = done.stdout
            supported, blocked, marked, history = shown.values()
            assert re.search(r"^\S+ +Alpha Vending .*(?<!Not )Supported$", supported, re.M), supported
            assert "utility   Riverside Municipality" in supported, supported
            assert "blocked   yes" in blocked and "utility   Unassigned" in blocked, blocked
            assert "rebroadcast marked by admin" in marked, marked
            assert "first_seen" in history and "routed" in history, history
            demo_logins = re.findall(
                r"^(demo-bank|corner-wallet|switch-ops)\s+(\w+)\s+(viewer|operator|admin)\s+\S+$", banner, re.M
            )
            assert len(demo_logins) == 5, banner
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
