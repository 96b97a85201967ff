"""Which outbox lanes this relay publishes: its share among the relays alive.

Each relay beats in `outbox_relays` every BEAT_SECONDS; the relays seen within ALIVE_SECONDS, sorted by name,
split the lanes by rank (lane % alive == rank). A lane is published only under its row lock (`relay_once`), so
two relays that both think a lane theirs, while the members change, take turns on it: order per key holds. A
relay that stops cleanly leaves at once; one that dies leaves its lanes idle until its beat is ALIVE_SECONDS old.
"""

from __future__ import annotations

import time

from kernel.dbconn import Db
from workers.outbox import LANES

BEAT_SECONDS = 2.0
ALIVE_SECONDS = 6.0


class RelayLanes:
    def __init__(self, member: str) -> None:
        self.member = member
        self.lanes: list[int] = list(range(LANES))
        self._next_beat = 0.0

    async def mine(self, conn: Db) -> list[int]:
        """This relay's lanes, after a beat when one is due."""
        if time.monotonic() >= self._next_beat:
            rows = await conn.fetch(
                """WITH beat AS (INSERT INTO outbox_relays (member, seen_at) VALUES ($1, now())
                                 ON CONFLICT (member) DO UPDATE SET seen_at = now()),
                        gone AS (DELETE FROM outbox_relays WHERE seen_at < now() - interval '1 hour')
                   SELECT member FROM outbox_relays WHERE seen_at > now() - make_interval(secs => $2)""",
                self.member,
                ALIVE_SECONDS,
            )
            # The beat is not visible to the statement that made it: count ourselves in.
            members = sorted({r["member"] for r in rows} | {self.member})
            rank = members.index(self.member)
            self.lanes = [lane for lane in range(LANES) if lane % len(members) == rank]
            self._next_beat = time.monotonic() + BEAT_SECONDS
        return self.lanes

    async def leave(self, conn: Db) -> None:
        await conn.execute("DELETE FROM outbox_relays WHERE member = $1", self.member)
