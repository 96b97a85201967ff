"""What must hold after every scenario, checked against the database and the topics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.env import PROVIDERS, BenchEnv
from faults.progress_monitor import unapplied
from kernel.topics import registry, topic


@dataclass
class Verdict:
    attempts: int
    lost: int  # attempts without a routing decision
    duplicated: int  # an attempt decided twice (two event ids), a round opened twice, an answer applied twice
    stale_overwrites: int  # support rows older than an answer that was applied
    unpublished: int  # outbox rows never sent
    unapplied: int  # consumed-topic records their group never applied (a stuck or lagging consumer)
    valid_dead_lettered: int
    dead_lettered: int
    poison_not_exactly_once: int  # poison messages missing from, or repeated on, the dead-letter topics
    commands_not_once: int  # operator commands without exactly one result and one audit entry
    flags_stuck: int = 0  # rebroadcast marks still set though a re-check round for them got an answer
    summaries_wrong: int = 0  # meters whose row's support (migration 0020) is not what meter_support holds

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.stale_overwrites
            or self.unpublished
            or self.unapplied
            or self.valid_dead_lettered
            or self.poison_not_exactly_once
            or self.commands_not_once
            or self.flags_stuck
            or self.summaries_wrong
        )


async def _read_all(env: BenchEnv, names: list[str]) -> list[tuple[bytes, bytes]]:
    return [(key, value) for key, value, _ in await _read_to_end(env, names)]


async def _read_to_end(env: BenchEnv, names: list[str]) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    """Every record of the topics up to their end offsets as they are now (not until a quiet gap, which a slow
    broker can fake): (key, value, headers)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env.bootstrap, group_id=None, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    out: list[tuple[bytes, bytes, dict[str, bytes]]] = []
    try:
        partitions = [TopicPartition(n, p) for n in names for p in range(_partition_count(n, env))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        waiting = {tp for tp in partitions if ends[tp] > 0}
        while waiting:
            batch = await consumer.getmany(*waiting, timeout_ms=2000, max_records=10_000)
            for records in batch.values():
                out += [(r.key or b"", r.value or b"", dict(r.headers or ())) for r in records]
            waiting = {tp for tp in waiting if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()


def _partition_count(name: str, env: BenchEnv) -> int:
    """From topics.yaml, the one place that says how many partitions each topic has."""
    prefix = env.settings.topic_prefix
    for spec in registry().values():
        names = [spec.name(prefix, provider_id=p) for p in PROVIDERS] if spec.templated else [spec.name(prefix)]
        if name in names:
            return spec.partitions
    raise KeyError(name)


def identity(value: bytes, headers: dict[str, bytes] | None = None) -> str:
    """What a poison record is known by on its dead-letter topic: the SHA-256 of its whole value (a dead letter
    cut to fit carries it in a header)."""
    if headers and "dlq_value_sha256" in headers:
        return headers["dlq_value_sha256"].decode()
    return hashlib.sha256(value).hexdigest()


def _events_per(events: list[tuple[bytes, bytes]], key: Callable[[dict[str, Any]], str | None]) -> dict[str, int]:
    """How many distinct events (envelope ids) there are per key (events whose key is None are left out)."""
    ids: dict[str, set[str]] = {}
    for _, value in events:
        event = json.loads(value)
        if (k := key(event)) is not None:
            ids.setdefault(k, set()).add(event["id"])
    return {k: len(v) for k, v in ids.items()}


def _support_change(event: dict[str, Any]) -> str | None:
    if event["type"] != "ppu.meter.support_changed":
        return None
    return f"{event['causationid']}/{event['data']['provider_id']}"


async def check(env: BenchEnv, expected_attempts: set[str], poison: set[bytes], commands: set[str]) -> Verdict:
    conn = await env.db()
    try:
        decided = {str(r["attempt_id"]) for r in await conn.fetch("SELECT attempt_id FROM routing_decisions")}
        double_rounds = await conn.fetchval(
            """SELECT count(*) FROM (SELECT meter_number FROM lookup_rounds WHERE reason = 'first_seen'
               GROUP BY meter_number HAVING count(*) > 1) x"""
        )
        stale = await conn.fetchval(
            """SELECT count(*) FROM meter_support s JOIN (
                   SELECT meter_number, provider_id, max(sent_at) AS newest FROM lookups
                   WHERE responded_at IS NOT NULL GROUP BY 1, 2) l USING (meter_number, provider_id)
               WHERE s.answered_sent_at IS NULL OR s.answered_sent_at < l.newest"""
        )
        unpublished = await conn.fetchval("SELECT coalesce(sum(n), 0) FROM outbox")  # messages, not rows
        flags_stuck = await conn.fetchval(
            """SELECT count(*) FROM rebroadcast_marks k WHERE EXISTS (
                   SELECT FROM lookup_rounds r JOIN lookups l USING (round_id)
                   WHERE r.meter_number = k.meter_number AND r.institution_id = k.institution_id
                     AND r.reason = 'rebroadcast' AND r.opened_at >= k.marked_at AND l.responded_at IS NOT NULL)"""
        )
        summaries_wrong = await conn.fetchval(
            """SELECT count(*) FROM meters m LEFT JOIN (
                   SELECT meter_number, string_agg(provider_id || '=' || status, ',' ORDER BY provider_id) AS support
                   FROM meter_support GROUP BY 1) s USING (meter_number)
               WHERE m.support IS DISTINCT FROM coalesce(s.support, '')"""
        )
        behind = await unapplied(env, conn)
        audited = {
            r["id"]: r["n"]
            for r in await conn.fetch(
                """SELECT details->>'command_id' AS id, count(*) AS n FROM audit_log
                   WHERE details->>'command_id' = ANY($1::text[]) GROUP BY 1""",
                list(commands),
            )
        }
    finally:
        await conn.close()
    prefix = env.settings.topic_prefix
    decisions = _events_per(
        await _read_all(env, [topic("routing_decisions").name(prefix)]), lambda e: e["data"]["attempt_id"]
    )
    # An answer (or command) applied twice would change a status twice: two events from one cause and provider.
    changes = _events_per(await _read_all(env, [topic("meter_events").name(prefix)]), _support_change)
    republished = sum(1 for n in [*decisions.values(), *changes.values()] if n > 1)
    results = _events_per(
        await _read_all(env, [topic("command_results").name(prefix)]), lambda e: e["data"]["command_id"]
    )
    commands_not_once = sum(1 for c in commands if results.get(c) != 1 or audited.get(c) != 1)
    letters = await _read_to_end(
        env,
        [
            topic("purchase_attempts_dlq").name(prefix),
            topic("lookup_responses_dlq").name(prefix),
            topic("operator_commands_dlq").name(prefix),
        ]
        + [topic("lookup_requests_dlq").name(prefix, provider_id=p) for p in PROVIDERS],
    )
    poisoned = {identity(v) for v in poison}
    known = [identity(v, h) for _, v, h in letters]
    valid_dead = sum(1 for k in known if k not in poisoned)
    seen = [k for k in known if k in poisoned]
    not_once = len(poisoned - set(seen)) + (len(seen) - len(set(seen)))
    # Lost: no decision stored, or none published on the topic the purchase service reads.
    return Verdict(
        len(expected_attempts),
        len(expected_attempts - (decided & set(decisions))),
        double_rounds + republished,
        stale,
        unpublished,
        behind,
        valid_dead,
        len(letters),
        not_once,
        commands_not_once,
        flags_stuck,
        summaries_wrong,
    )
