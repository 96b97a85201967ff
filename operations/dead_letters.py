"""Working dead letters without writing a Kafka consumer: list and inspect them, replay them to the topic they
came from once the cause is fixed, and purge what was dealt with.

A replay is safe to repeat: the record goes back with its original key and bytes, so its message id is the one the
consumer's inbox already knows if it was applied once. A truncated dead letter (its value cut to fit) is never
replayed: it is not the original. Kafka cannot delete one record in the middle of a log, so a purge removes a
dead-letter partition's records before an offset (the Admin API's DeleteRecords).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from pydantic import ValidationError

from kernel.dbconn import Db
from kernel.errors import PpuError
from kernel.topics import TopicSpec, registry
from schemas.dead_letter import DeadLetterHeaders

REPLAYED_FROM = "ppu_replayed_from"  # header on a replayed record: which dead letter it was


@dataclass(frozen=True)
class Letter:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    about: DeadLetterHeaders | None  # None: a record on the dead-letter topic without our headers

    @property
    def ref(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def kind(self) -> str:
        """stage/error class, as the counts group them."""
        return f"{self.about.stage}/{self.about.error_class}" if self.about else "unknown"


def counts(letters: Iterable[Letter]) -> dict[tuple[str, str], int]:
    """How many dead letters per (topic, stage/error)."""
    out: dict[tuple[str, str], int] = {}
    for x in letters:
        out[(x.topic, x.kind)] = out.get((x.topic, x.kind), 0) + 1
    return out


async def topics_of(conn: Db, prefix: str, key: str | None) -> dict[str, TopicSpec]:
    """Every dead-letter topic of this deployment (or the one `key` names), per-provider ones for every provider."""
    providers = [r["provider_id"] for r in await conn.fetch("SELECT provider_id FROM providers")]
    return dead_letter_topics(prefix, providers, key)


def find(letters: Iterable[Letter], ref: str) -> Letter | None:
    """The dead letter `ref` (TOPIC:PARTITION:OFFSET) names; a malformed ref is a PpuError."""
    wanted = parse_ref(ref)
    return next((x for x in letters if (x.topic, x.partition, x.offset) == wanted), None)


def dead_letter_topics(prefix: str, providers: Iterable[str], key: str | None = None) -> dict[str, TopicSpec]:
    """Every dead-letter topic (or the one registry key `key`) by name; per-provider ones for `providers`."""
    specs = {k: s for k, s in registry().items() if k.endswith("_dlq") and (key is None or k == key)}
    if key is not None and not specs:
        known = ", ".join(sorted(k for k in registry() if k.endswith("_dlq")))
        raise PpuError(f"{key} is not a dead-letter topic; these are: {known}")
    names: dict[str, TopicSpec] = {}
    for spec in specs.values():
        for pid in sorted(providers) if spec.templated else [None]:
            names[spec.name(prefix, provider_id=pid) if pid else spec.name(prefix)] = spec
    return names


def parse_ref(ref: str) -> tuple[str, int, int]:
    topic, partition, offset = [*ref.rsplit(":", 2), "", ""][:3]
    if not topic or not partition.isdigit() or not offset.isdigit():
        raise PpuError(f"{ref!r} is not a dead letter's reference (TOPIC:PARTITION:OFFSET, as `ppu dlq list` prints)")
    return topic, int(partition), int(offset)


async def read_letters(bootstrap: str, topics: dict[str, TopicSpec]) -> list[Letter]:
    """Every record on these topics, from the start to the end they have now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(name, p) for name, spec in topics.items() for p in range(spec.partitions)]
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        todo = [tp for tp in parts if ends[tp] > starts[tp]]
        letters: list[Letter] = []
        if not todo:
            return letters
        consumer.assign(todo)
        for tp in todo:
            consumer.seek(tp, starts[tp])
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, records in batch.items():
                letters += [_letter(r) for r in records if r.offset < ends[tp]]
            todo = [tp for tp in todo if await consumer.position(tp) < ends[tp]]
        return sorted(letters, key=lambda x: (x.topic, x.partition, x.offset))
    finally:
        await consumer.stop()


def _letter(r: ConsumerRecord[bytes, bytes]) -> Letter:
    try:
        about: DeadLetterHeaders | None = DeadLetterHeaders.from_headers(list(r.headers or ()))
    except (ValidationError, UnicodeDecodeError):
        about = None
    return Letter(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value or b"", about)


def matching(letters: list[Letter], stage: str | None, error_class: str | None, since: datetime | None) -> list[Letter]:
    return [
        x
        for x in letters
        if (stage is None or (x.about is not None and x.about.stage == stage))
        and (error_class is None or (x.about is not None and x.about.error_class == error_class))
        and (since is None or x.at >= since)
    ]


def hex_dump(value: bytes, limit: int = 4096) -> str:
    """Offset, 16 bytes in hex, and the printable ones as text, per line (as `xxd` shows them)."""
    lines = []
    for at in range(0, min(len(value), limit), 16):
        chunk = value[at : at + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{at:08x}  {chunk.hex(' '):47}  {text}")
    return "\n".join(lines)


def why_not_replayable(letter: Letter) -> str | None:
    if letter.about is None:
        return "it carries no dead-letter headers: where it came from is unknown"
    if letter.about.truncated:
        return f"its value was cut to fit the dead-letter topic ({letter.about.value_length} bytes originally)"
    return None


async def replay(producer: AIOKafkaProducer, letter: Letter) -> str:
    """Sends the original bytes and key back to the original topic; returns where it went."""
    why = why_not_replayable(letter)
    if why is not None or letter.about is None:
        raise PpuError(f"{letter.ref} cannot be replayed: {why}")
    sent = await producer.send_and_wait(
        letter.about.original_topic,
        value=letter.value,
        key=letter.key,
        headers=[(REPLAYED_FROM, letter.ref.encode())],
    )
    return f"{sent.topic}:{sent.partition}:{sent.offset}"


async def purge(admin: AIOKafkaAdminClient, topic: str, partition: int, before_offset: int) -> None:
    await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before_offset=before_offset)})
