"""CLI commands that run and drive the system (workers, sends, inspection)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    del cli
