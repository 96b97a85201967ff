"""`ppu dlq list|show|replay|purge`: dead letters, for the on-call engineer (operations/dead_letters.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import click

from db.audit import audit_cli
from infra.topic_admin import admin_client
from kernel.connections import connection, endpoints, started_producer
from kernel.errors import PpuError
from kernel.settings import Settings
from operations import dead_letters as dl

TOPIC = click.option("--topic", "key", default=None, help="a dead-letter topic's key in topics.yaml (default: all)")
STAGE = click.option("--stage", type=click.Choice(["decode", "validate", "apply"]), default=None)
ERROR = click.option("--error-class", default=None, help="e.g. MessageTooLarge, SchemaViolation, Rejected")
SINCE = click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]), default=None)


@click.group()
def dlq() -> None:
    """Dead letters: list, inspect, replay after a fix, purge."""


async def _letters(settings: Settings, key: str | None) -> list[dl.Letter]:
    async with connection(settings) as conn:
        topics = await dl.topics_of(conn, settings.topic_prefix, key)
    return await dl.read_letters(endpoints(settings).kafka_bootstrap_servers, topics)


def _found(key: str | None, stage: str | None, error_class: str | None, since: datetime | None) -> list[dl.Letter]:
    if since is not None and since.tzinfo is None:
        since = since.astimezone()  # a date alone: local midnight
    return dl.matching(asyncio.run(_letters(Settings(), key)), stage, error_class, since)


@dlq.command("list")
@TOPIC
@STAGE
@ERROR
@SINCE
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
def dlq_list(key: str | None, stage: str | None, error_class: str | None, since: datetime | None, limit: int) -> None:
    """One line per dead letter, oldest first, and a count per topic and error."""
    letters = _found(key, stage, error_class, since)
    for x in letters[:limit]:
        why = x.about.error_message[:80] if x.about else "(no dead-letter headers)"
        click.echo(f"{x.ref:48} {x.at:%Y-%m-%d %H:%M:%S%z}  {x.kind:28} {why}")
    counted = dl.counts(letters).items()
    click.echo(f"{len(letters)} dead letter(s)" + "".join(f"\n  {n:6} {t} {k}" for (t, k), n in counted))


@dlq.command("show")
@click.argument("ref")
@click.option("--hex", "as_hex", is_flag=True, help="the value as hex rather than text")
def dlq_show(ref: str, as_hex: bool) -> None:
    """One dead letter: where it came from, why, and its value."""
    letter = _one(ref)
    click.echo(f"dead letter  {letter.ref} at {letter.at:%Y-%m-%d %H:%M:%S%z}")
    click.echo(f"key          {letter.key.decode('utf-8', 'replace') if letter.key is not None else '-'}")
    for name, value in (letter.about.model_dump(exclude_none=True) if letter.about else {}).items():
        click.echo(f"{name:12} {value}")
    click.echo(f"replayable   {dl.why_not_replayable(letter) or 'yes'}")
    click.echo("value:")
    click.echo(dl.hex_dump(letter.value, len(letter.value)) if as_hex else letter.value.decode("utf-8", "replace"))


def _one(ref: str) -> dl.Letter:
    dl.parse_ref(ref)  # a malformed ref is told before anything is read
    found = dl.find(asyncio.run(_letters(Settings(), None)), ref)
    if found is None:
        raise PpuError(f"no dead letter {ref} (purged, past retention, or not a dead-letter topic of this system)")
    return found


@dlq.command("replay")
@click.argument("refs", nargs=-1)
@TOPIC
@STAGE
@ERROR
@SINCE
@click.option("--all-matching", is_flag=True, help="replay every dead letter the filters select")
def dlq_replay(
    refs: tuple[str, ...],
    key: str | None,
    stage: str | None,
    error_class: str | None,
    since: datetime | None,
    all_matching: bool,
) -> None:
    """Send dead letters back to their original topic, after the cause is fixed. Replaying twice changes nothing:
    the consumers' inbox knows the message id."""
    if bool(refs) == all_matching:
        raise click.UsageError("give dead-letter references, or --all-matching with filters (not both)")
    chosen = _found(key, stage, error_class, since)
    if refs:
        wanted = {dl.parse_ref(r) for r in refs}
        chosen = [x for x in chosen if (x.topic, x.partition, x.offset) in wanted]
        missing = wanted - {(x.topic, x.partition, x.offset) for x in chosen}
        if missing:
            raise PpuError(f"no dead letter {':'.join(map(str, sorted(missing)[0]))}")
    asyncio.run(_replay(Settings(), chosen))


async def _replay(settings: Settings, letters: list[dl.Letter]) -> None:
    async with started_producer(endpoints(settings).kafka_bootstrap_servers) as producer, connection(settings) as conn:
        for letter in letters:
            try:
                to = await dl.replay(producer, letter)
            except PpuError as e:
                await audit_cli(conn, "dlq_replay", letter.ref, "refused", {"reason": str(e)})
                click.echo(f"refused  {e}")
                continue
            await audit_cli(conn, "dlq_replay", letter.ref, "ok", {"to": to})
            click.echo(f"replayed {letter.ref} -> {to}")


@dlq.command("purge")
@click.option("--topic", "key", required=True, help="the dead-letter topic's key in topics.yaml")
@click.option("--provider", default=None, help="per-provider dead-letter topics: whose")
@click.option("--before-offset", type=click.IntRange(0), required=True, help="records before this offset go")
@click.option("--partition", type=click.IntRange(0), default=0, show_default=True)
def dlq_purge(key: str, provider: str | None, before_offset: int, partition: int) -> None:
    """Remove a dead-letter partition's records before an offset (Kafka deletes a log's head, not one record)."""
    settings = Settings()
    topics = dl.dead_letter_topics(settings.topic_prefix, [provider] if provider else [], key)
    if len(topics) != 1:
        raise click.UsageError(f"{key} is per provider: give --provider")
    (name,) = topics

    async def run() -> None:
        async with admin_client(endpoints(settings).kafka_bootstrap_servers) as admin:
            await dl.purge(admin, name, partition, before_offset)
        async with connection(settings) as conn:
            await audit_cli(conn, "dlq_purge", f"{name}:{partition}", "ok", {"before_offset": before_offset})

    asyncio.run(run())
    click.echo(f"purged {name}:{partition} before offset {before_offset}")
