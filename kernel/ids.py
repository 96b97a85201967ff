"""Ids this system makes: UUIDv7 (RFC 9562), time-ordered, so rows keyed by them are appended to the end of their
indexes instead of scattered across them, and history can be cut by time. uuid-utils makes them (Python's `uuid`
has no v7 before 3.14); its `compat` module returns the standard `uuid.UUID` that asyncpg and pydantic take.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from uuid_utils import compat


def new_id() -> uuid.UUID:
    return compat.uuid7()


def id_floor(at: datetime) -> uuid.UUID:
    """The least UUIDv7 made at or after `at` (its millisecond time, every other bit zero): where a range of ids
    by time begins, for the partitions keyed by id and for queries that read only recent ones."""
    ms = max(int(at.timestamp() * 1000), 0)
    return uuid.UUID(int=min(ms, (1 << 48) - 1) << 80)


def id_time(made: uuid.UUID) -> datetime:
    """When a UUIDv7 was made (its millisecond time)."""
    return datetime.fromtimestamp((made.int >> 80) / 1000, UTC)
