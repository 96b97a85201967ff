"""Ids this system makes: UUIDv7 (RFC 9562), time-ordered, so rows keyed by them are appended to the end of their
indexes instead of scattered across them, and history can be cut by time. uuid-utils makes them (Python's `uuid`
has no v7 before 3.14); its `compat` module returns the standard `uuid.UUID` that asyncpg and pydantic take.
"""

from __future__ import annotations

import uuid

from uuid_utils import compat


def new_id() -> uuid.UUID:
    return compat.uuid7()
