"""The live window: how far back the hot path looks for rows that can still change (attempts waiting or seen
again, open rounds, lookups awaiting answers). Queries bound by it read the few newest time partitions, not every
one kept (db/partitions.py); the bound is passed as a parameter so that PostgreSQL prunes while planning.

Seven days, as long as the inbox remembers message ids (workers/sweeper.py): an attempt id seen again after that
is a new attempt, as a message id redelivered after that is a new message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from kernel.ids import id_floor

LIVE_DAYS = 7
# Rows written after a moment carry ids made after it less this: clocks of several hosts and long transactions.
ID_MARGIN = timedelta(hours=1)
# The window's end, for the same pruning while planning: no row of the window is stamped later than this ahead of
# our clock (rows are stamped by the database's clock or a worker's, each within this of ours). Partitions are made a
# week ahead, so without an end every read planned and scanned them all.
AHEAD = timedelta(days=1)


def live_since() -> datetime:
    return datetime.now(UTC) - timedelta(days=LIVE_DAYS)


def live_since_id() -> uuid.UUID:
    return id_floor(live_since())


def live_until() -> datetime:
    return datetime.now(UTC) + AHEAD


def live_until_id() -> uuid.UUID:
    return id_floor(live_until())


def ids_since(at: datetime) -> uuid.UUID:
    """The lowest id (UUIDv7, time-ordered) a row written since `at` can carry, with ID_MARGIN: a bound on a table
    partitioned by its ids that PostgreSQL prunes by while planning."""
    return id_floor(at - ID_MARGIN)
