"""`ppu stack prepare`: install what the local stack needs (once), so later starts are fast."""

from __future__ import annotations

import os
import shutil
import subprocess

from infra import kafka_launcher, postgres_launcher
from kernel.errors import PpuError


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PpuError(f"missing {', '.join(packages)}: install them (as root: apt-get install {' '.join(packages)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        if subprocess.run(cmd, capture_output=True, env=env, check=False).returncode != 0:
            raise PpuError(f"`{' '.join(cmd)}` failed")


def prepare(kafka_version: str) -> list[str]:
    """Returns one line per component saying what is there."""
    if shutil.which("java") is None:
        _apt_install("openjdk-17-jre-headless")
    if shutil.which("mvn") is None and not (kafka_launcher.cache_dir(kafka_version) / ".complete").exists():
        _apt_install("maven")
    kafka_launcher.require_java()
    libs = kafka_launcher.fetch_jars(kafka_version)
    bindir = postgres_launcher.ensure_installed()
    return [f"kafka {kafka_version} jars in {libs}", f"postgresql server in {bindir}"]
