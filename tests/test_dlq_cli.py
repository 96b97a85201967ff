"""`ppu dlq`: a dead letter listed, inspected, replayed after its cause is fixed — applied exactly once however
often it is replayed — and purged, through the real CLI, broker and database."""

from __future__ import annotations

import asyncio
import re

import asyncpg

from kernel.settings import Settings
from kernel.topics import topic
from tests.conftest import run_ppu
from tests.harness import eventually, running, seed_reference


async def ppu(settings: Settings, *args: str) -> str:
    done = await asyncio.to_thread(run_ppu, settings, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_dead_letter_replayed_after_the_fix_is_applied_once(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    # The cause: a size limit set too low. Every purchase attempt is larger than 200 bytes.
    async with running(settings.model_copy(update={"max_message_bytes": 200})) as system:
        attempt = await system.attempt("0401000077")

        async def listed_once() -> str | None:
            # The listing is text, always truthy: wait for the dead letter itself, not for any answer.
            out = await ppu(settings, "dlq", "list", "--error-class", "MessageTooLarge")
            return out if "1 dead letter(s)" in out else None

        listed = await eventually(listed_once, what="the dead letter")
    assert "1 dead letter(s)" in listed and "decode/MessageTooLarge" in listed
    ref = re.search(r"^(\S+:\d+:\d+) ", listed, re.M)
    assert ref is not None, listed
    shown = await ppu(settings, "dlq", "show", ref[1])
    assert "error_class  MessageTooLarge" in shown and str(attempt.data.attempt_id) in shown
    assert "replayable   yes" in shown
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts") == 0

    attempt_id = attempt.data.attempt_id
    async with running(settings):  # the fix: the default limit
        for _ in range(2):  # replaying twice changes nothing: the inbox knows the message id
            assert f"replayed {ref[1]}" in await ppu(settings, "dlq", "replay", ref[1])
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM purchase_attempts WHERE attempt_id = $1", attempt_id),
            what="the replayed attempt applied",
        )
        # Both replays consumed: the original and two replays, three records, stored to the end (-1: never stored).
        await eventually(
            lambda: db.fetchval(
                "SELECT sum(greatest(next_offset, 0)) = 3 FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
                settings.topic_prefix + "ppu-lookup-worker",
                topic("purchase_attempts").name(settings.topic_prefix),
            ),
            what="both replays consumed",
            within=15,
        )
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts") == 1
    assert await db.fetchval("SELECT count(*) FROM lookup_rounds") == 1, "one first-seen round, not one per replay"
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'dlq_replay' AND outcome = 'ok'") == 2

    assert "purged" in await ppu(settings, "dlq", "purge", "--topic", "purchase_attempts_dlq", "--before-offset", "1")
    assert "0 dead letter(s)" in await ppu(settings, "dlq", "list")
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'dlq_purge'") == 1


async def test_bad_references_are_one_readable_line(settings: Settings, topics: list[str]) -> None:
    done = await asyncio.to_thread(run_ppu, settings, "dlq", "show", "not-a-ref")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "TOPIC:PARTITION:OFFSET" in done.stderr
    done = await asyncio.to_thread(run_ppu, settings, "dlq", "list", "--topic", "purchase_attempts")
    assert done.returncode == 1 and "is not a dead-letter topic" in done.stderr
