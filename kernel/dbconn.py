"""The type of a database connection handed to handlers: a plain connection or one lent by a pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Db: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    Db = object
