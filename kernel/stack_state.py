"""Where the local stack (`ppu stack up`) recorded its addresses: written by infra.stack, read by the connections."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StackState:
    kafka_bootstrap_servers: str
    database_url: str
    kafka_pid: int
    kafka_dir: str
    postgres_dir: str
    kafka_pids: list[int] = field(default_factory=list)  # every node of a multi-broker stack (--brokers N)
    standby_dir: str | None = None  # the PostgreSQL standby (--standby)

    @staticmethod
    def path(state_dir: Path) -> Path:
        return state_dir / "stack.json"

    @classmethod
    def load(cls, state_dir: Path) -> StackState | None:
        p = cls.path(state_dir)
        return cls(**json.loads(p.read_text())) if p.exists() else None

    def save(self, state_dir: Path) -> None:
        p = self.path(state_dir)
        p.write_text(json.dumps(self.__dict__, indent=2))
        p.chmod(0o600)  # it holds the database password
