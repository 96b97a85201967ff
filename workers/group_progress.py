"""What a consumer group has applied, kept in PostgreSQL: the next offset per partition, fenced by an epoch
that each member bumps when it is assigned the partition, and the inbox of handled message ids."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from aiokafka import TopicPartition

from kernel.dbconn import Db

NEVER = -1  # no offset stored yet for the partition


def _columns(partitions: list[TopicPartition]) -> tuple[list[str], list[int]]:
    return [tp.topic for tp in partitions], [tp.partition for tp in partitions]


class GroupProgress:
    def __init__(self, group_id: str, member: str) -> None:
        self.group_id, self.member = group_id, member
        self.epochs: dict[TopicPartition, int] = {}  # the partitions this member holds, with its epoch

    async def claim(self, pool: asyncpg.Pool, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Takes the partitions (epoch + 1 fences the previous holder); returns their stored next offsets."""
        rows = await pool.fetch(
            """INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, epoch, owner)
               SELECT $1, t, p, -1, 1, $4 FROM unnest($2::text[], $3::int[]) AS u(t, p)
               ON CONFLICT (group_id, topic, partition) DO UPDATE
               SET epoch = consumer_offsets.epoch + 1, owner = excluded.owner, updated_at = now()
               RETURNING topic, partition, next_offset, epoch""",
            self.group_id,
            *_columns(partitions),
            self.member,
        )
        for r in rows:
            self.epochs[TopicPartition(r["topic"], r["partition"])] = r["epoch"]
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    def release(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.epochs.pop(tp, None)

    async def stored(self, pool: asyncpg.Pool, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offsets stored for the partitions this member still holds (same epoch)."""
        held = [tp for tp in partitions if tp in self.epochs]
        rows = await pool.fetch(
            """SELECT topic, partition, next_offset FROM consumer_offsets
               WHERE group_id = $1 AND (topic, partition, epoch) IN
                     (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[]))""",
            self.group_id,
            *_columns(held),
            [self.epochs[tp] for tp in held],
        )
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    def storing(self, next_offsets: dict[TopicPartition, int]) -> tuple[str, str, list[str], list[int], list[int]]:
        """The statement (and its arguments) that stores the next offsets: run in the batch's transaction, after
        `fence_and_mark` locked the rows (the unit of work runs it with the outbox's write, in one round trip)."""
        return (
            """UPDATE consumer_offsets c SET next_offset = u.o, updated_at = now()
               FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, o)
               WHERE c.group_id = $1 AND c.topic = u.t AND c.partition = u.p""",
            self.group_id,
            *_columns(list(next_offsets)),
            list(next_offsets.values()),
        )

    async def fence_and_mark(
        self, conn: Db, partitions: list[TopicPartition], records: list[tuple[TopicPartition, int, uuid.UUID]]
    ) -> tuple[dict[TopicPartition, int], set[uuid.UUID], datetime]:
        """The fence: locks the rows this member still holds (same epoch) until the transaction ends; a partition
        missing from the answer was taken by another member, and its records must not be applied. And the inbox:
        records the ids of `records` (partition, offset, message id) of the partitions held, at or past their stored
        offsets. One round trip, the first of every batch. Returns the held partitions' next offsets, the ids
        never handled before, and the transaction's clock (`now()`, the time every row it writes records)."""
        held = [tp for tp in partitions if tp in self.epochs]
        rows = await conn.fetch(
            """WITH owned AS (
                   SELECT topic, partition, next_offset FROM consumer_offsets
                   WHERE group_id = $1 AND (topic, partition, epoch) IN
                         (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[]))
                   FOR UPDATE),
                 marked AS (
                   INSERT INTO inbox (group_id, message_id)
                   SELECT $1, c.id FROM unnest($5::text[], $6::int[], $7::bigint[], $8::uuid[]) AS c(t, p, o, id)
                   JOIN owned ON owned.topic = c.t AND owned.partition = c.p AND c.o >= owned.next_offset
                   ON CONFLICT DO NOTHING RETURNING message_id)
               SELECT topic, partition, next_offset, NULL::uuid AS message_id, NULL::timestamptz AS at FROM owned
               UNION ALL SELECT NULL, NULL, NULL, message_id, NULL FROM marked
               UNION ALL SELECT NULL, NULL, NULL, NULL, now()""",
            self.group_id,
            *_columns(held),
            [self.epochs[tp] for tp in held],
            *_columns([tp for tp, _, _ in records]),
            [offset for _, offset, _ in records],
            [message_id for _, _, message_id in records],
        )
        owned = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows if r["topic"] is not None}
        (now,) = (r["at"] for r in rows if r["at"] is not None)
        return owned, {r["message_id"] for r in rows if r["message_id"] is not None}, now
