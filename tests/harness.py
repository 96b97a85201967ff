"""Drives the real workers (in this process) through the real broker and database, as the upstream purchase
service, the providers and the console would."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from db.migrate import migrate
from domain.command_proof import sign
from kernel.connections import started_producer
from kernel.dbconn import Db
from kernel.passwords import hash_password
from kernel.settings import Settings
from kernel.topics import topic
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import CONTENT_TYPE, Envelope
from schemas.lookup import LookupRequested, LookupResponded, LookupRespondedData, UtilityInfo
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData
from workers.process import run_workers
from workers.registry import ALL, BY_NAME

PROVIDERS = ["p1", "p2", "p3"]
ELECTRUM_IDS = {"p1": "2001", "p2": "2002", "p3": "2003"}  # their Electrum institution ids
PASSWORD = "correct horse battery"  # the test users' password


async def seed_reference(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO institutions (institution_id, name, electrum_id) VALUES "
        "('i1', 'Bank One', '1001'), ('i2', 'Wallet Two', '1002')"
    )
    await db.executemany(
        "INSERT INTO providers (provider_id, name, electrum_id) VALUES ($1, $2, $3)",
        [(p, f"Provider {p}", ELECTRUM_IDS[p]) for p in PROVIDERS],
    )
    await db.executemany(
        "INSERT INTO institution_providers VALUES ($1, $2)", [("i1", p) for p in PROVIDERS] + [("i2", "p1")]
    )
    pw = hash_password(PASSWORD)
    await db.executemany(
        "INSERT INTO console_users (institution_id, username, password_hash, role) VALUES ($1, $2, $3, $4)",
        [
            ("i1", "olga", pw, "operator"),
            ("i1", "vic", pw, "viewer"),
            ("i1", "ada", pw, "admin"),
            ("i2", "wes", pw, "operator"),
            ("i2", "zed", pw, "admin"),
        ],
    )


async def supported_meters(db: asyncpg.Connection, prefix: str, count: int) -> None:
    """`count` known meters, `<prefix>00000000` on, that p1 supports: attempts for them are decided at once."""
    await db.execute(
        "INSERT INTO meters (meter_number) SELECT $1 || lpad(i::text, 8, '0') FROM generate_series(0, $2 - 1) i",
        prefix,
        count,
    )
    await db.execute(
        """INSERT INTO meter_support (meter_number, provider_id, status)
           SELECT meter_number, 'p1', 'supported' FROM meters WHERE meter_number LIKE $1 || '%'""",
        prefix,
    )


class System:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings, self.producer = settings, producer
        self.prefix = settings.topic_prefix
        self._requests: dict[str, AIOKafkaConsumer] = {}

    async def publish(self, topic_key: str, value: bytes, key: str) -> None:
        await self.producer.send_and_wait(
            topic(topic_key).name(self.prefix), value=value, key=key.encode(), headers=[("content-type", CONTENT_TYPE)]
        )

    async def publish_to(self, topic_key: str, value: bytes, key: str) -> Any:
        """Like publish; returns the record's metadata (its partition and offset)."""
        return await self.producer.send_and_wait(
            topic(topic_key).name(self.prefix), value=value, key=key.encode(), headers=[("content-type", CONTENT_TYPE)]
        )

    async def send(self, topic_key: str, event: Envelope[Any]) -> None:
        await self.publish(topic_key, event.encode(), event.subject)

    async def attempt(
        self, meter: str, institution: str = "i1", attempt_id: uuid.UUID | None = None, send: bool = True
    ) -> PurchaseAttempted:
        data = PurchaseAttemptedData(
            attempt_id=attempt_id or uuid.uuid4(), meter_number=meter, institution_id=institution
        )
        event = PurchaseAttempted.new(data, source="test/purchase-service", correlationid=str(data.attempt_id))
        if send:
            await self.send("purchase_attempts", event)
        return event

    async def confirm_support(
        self, meter: str, operator: str = "olga", institution: str = "i1", signed: bool = True
    ) -> uuid.UUID:
        """As the console sends it: signed with the deployment's key (unless `signed` is False)."""
        data = ConfirmSupportRequestedData(meter_number=meter, operator=operator, institution_id=institution)
        event = ConfirmSupportRequested.new(data, source="test/console", correlationid="c")
        key = self.settings.command_signing_key
        if signed and key is not None:
            event = sign(event, key.get_secret_value())
        await self.send("operator_commands", event)
        return event.id

    async def requests(self, provider: str, count: int, within: float = 30) -> list[LookupRequested]:
        """The next `count` lookup requests on this provider's topic."""
        if provider not in self._requests:
            c = AIOKafkaConsumer(
                topic("lookup_requests").name(self.prefix, provider_id=provider),
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                group_id=f"{self.prefix}test-{provider}",
                auto_offset_reset="earliest",
            )
            await c.start()
            self._requests[provider] = c
        got: list[LookupRequested] = []
        async with asyncio.timeout(within):
            while len(got) < count:
                batch = await self._requests[provider].getmany(timeout_ms=200)
                got += [LookupRequested.model_validate_json(r.value or b"") for rs in batch.values() for r in rs]
        return got

    def answer(
        self, request: LookupRequested, status: str, utility: str | None = None, responded_at: datetime | None = None
    ) -> LookupResponded:
        d = request.data
        data = LookupRespondedData(
            lookup_id=d.lookup_id,
            provider_id=d.provider_id,
            meter_number=d.meter_number,
            status=status,
            responded_at=responded_at or datetime.now(UTC),
            utility=UtilityInfo(name=utility) if utility else None,
        )
        return LookupResponded.new(data, source=f"test/{d.provider_id}", correlationid=request.correlationid)

    async def respond(self, request: LookupRequested, status: str, **kw: Any) -> LookupResponded:
        answer = self.answer(request, status, **kw)
        await self.send("lookup_responses", answer)
        return answer

    async def close(self) -> None:
        for c in self._requests.values():
            await c.stop()


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 30, what: str = "condition") -> Any:
    """Polls `check` until it returns something truthy; fails with `what` after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.1)


async def applied(db: Db, worker: str, count: int) -> bool:
    """Whether the worker's group has applied at least `count` records (its stored next offsets, summed over
    partitions; the test's topics hold only what it wrote): the lookup flow keeps no inbox to count them by
    (workers/registry.py)."""
    stored = await db.fetchval(
        "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM consumer_offsets WHERE group_id LIKE '%' || $1",
        BY_NAME[worker].group,
    )
    return int(stored) >= count


@contextlib.asynccontextmanager
async def running(settings: Settings, names: tuple[str, ...] = ALL) -> AsyncIterator[System]:
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_workers(list(names), settings, stop))
    assert settings.kafka_bootstrap_servers is not None
    async with started_producer(settings.kafka_bootstrap_servers) as producer:
        system = System(settings, producer)
        try:
            yield system
        finally:
            await system.close()
            stop.set()
            await asyncio.wait_for(task, 30)


async def plan_of(db: Db, sql: str, *args: Any) -> str:
    """PostgreSQL's plan for `sql` with these parameters (planned for their values), as EXPLAIN prints it."""
    return "\n".join(r[0] for r in await db.fetch(f"EXPLAIN {sql}", *args))


async def installed_before(db: asyncpg.Connection, version: int) -> None:
    """An install as the migrations before `version` left it, in a schema of its own (`upgraded`, first on the
    session's search path): what an upgrade starts from. `migrate(db)` then applies the rest."""
    await db.execute("CREATE SCHEMA upgraded; SET search_path TO upgraded, public")
    await migrate(db, before=version)
