"""`ppu worker provider-bridge --provider ID`: runs the HTTP bridge for one provider.

Records are handled concurrently (up to four per allowed in-flight call), so a lookup being retried never holds
back the ones behind it; offsets are committed up to the oldest unfinished record (providers/offsets.py). The
provider's settings are re-read every few seconds. A provider that refuses our bodies (400 FORMAT_ERROR, bad
credentials) or for which no valid body can be built is shown MISCONFIGURED until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl

import asyncpg
import httpx
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind

from kernel import tracing
from kernel.connections import create_pool, endpoints, started_producer
from kernel.errors import PpuError
from kernel.settings import Settings
from kernel.topics import topic
from messaging import metrics as worker_metrics
from messaging.dead_letters import DeadLetterer, DeadLetterRefused, Failure
from messaging.fetch_pace import FetchPace
from messaging.inbound import decode
from messaging.retrying import retry_until_stopped
from providers import bridge_metrics as metrics
from providers.answers import as_event
from providers.bridge_health import HealthMarks
from providers.directory import Directory, ProviderConfig, load_directory
from providers.http_bridge import Bridge
from providers.offsets import OffsetTracker
from schemas.envelope import CONTENT_TYPE
from schemas.lookup import LookupRequested

log = structlog.get_logger()


def http_client(provider: ProviderConfig) -> httpx.AsyncClient:
    creds = provider.credentials()
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=provider.ca_file) if provider.ca_file else True
    return httpx.AsyncClient(base_url=provider.base_url, auth=httpx.BasicAuth(*creds) if creds else None, verify=verify)


class Unfinished(Exception):
    """The record's lookup could not be finished (its dead letter was refused): its offset is not committed."""


async def _close_later(client: httpx.AsyncClient, seconds: float) -> None:
    """A replaced client closes once the calls it carries have had their time."""
    await asyncio.sleep(seconds)
    await client.aclose()


class _Forget(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, tracker: OffsetTracker) -> None:
        self.tracker = tracker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.tracker.forget(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class BridgeWorker:
    def __init__(self, settings: Settings, directory: Directory, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        self.settings, self.pool, self.stop = settings, pool, stop
        pid, prefix = directory.provider.provider_id, settings.topic_prefix
        self.pid, self.group = pid, f"{prefix}ppu-provider-bridge-{pid}"
        self.requests = topic("lookup_requests").name(prefix, provider_id=pid)
        self.dlq = topic("lookup_requests_dlq").name(prefix, provider_id=pid)
        self.responses = topic("lookup_responses").name(prefix)
        self.bridge = Bridge(directory, settings, http_client(directory.provider))
        self.health = HealthMarks(pool, pid)
        self.tracker = OffsetTracker()
        self.failed: BaseException | None = None
        self.closing: set[asyncio.Future[None]] = set()  # replaced HTTP clients, closed after a grace period

    async def reload(self) -> None:
        """Picks up `ppu providers update` without a restart."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.settings.bridge_reload_seconds)
            try:
                async with self.pool.acquire() as conn:
                    fresh = await load_directory(conn, self.pid)
                client = self.bridge.client
                if fresh.provider.connection_settings() != self.bridge.directory.provider.connection_settings():
                    client = http_client(fresh.provider)
                    grace = self.bridge.directory.provider.timeout_seconds + 1
                    closing = asyncio.ensure_future(_close_later(self.bridge.client, grace))
                    self.closing.add(closing)
                    closing.add_done_callback(self.closing.discard)
                changed = fresh != self.bridge.directory or client is not self.bridge.client
                self.bridge.reconfigure(fresh, client)
                if changed:
                    metrics.RELOADS.labels(self.pid).inc()
                    log.info("provider settings reloaded", provider=self.pid, base_url=fresh.provider.base_url)
            except (PpuError, asyncpg.PostgresError, OSError, ssl.SSLError) as e:
                log.warning("cannot reload provider settings; keeping them", provider=self.pid, error=str(e))

    async def one(
        self, record: ConsumerRecord[bytes, bytes], dead_letters: DeadLetterer, producer: AIOKafkaProducer
    ) -> None:
        decoded = decode(record, LookupRequested, self.settings.max_message_bytes)
        if not isinstance(decoded, LookupRequested):
            failure = decoded if isinstance(decoded, Failure) else Failure("validate", "WrongType", "not a lookup")
            await self._dead_letter(dead_letters, record, failure)
            return
        parent = tracing.extract(record.headers) if tracing.enabled() else None
        with tracing.span(f"PPU v3 lookup {self.pid}", parent, SpanKind.CLIENT, provider=self.pid):
            outcome = await self.bridge.lookup(decoded)  # the call carries this span in its HTTP headers
            trace = tracing.kafka_headers()  # and the answer carries it on
        metrics.OUTCOMES.labels(self.pid, outcome.kind).inc()
        await self.health.saw(outcome)
        if outcome.kind in ("supported", "not_supported"):
            event = as_event(decoded, outcome)
            await retry_until_stopped(
                self.stop,
                lambda: producer.send_and_wait(
                    self.responses,
                    value=event.encode(),
                    key=event.subject.encode(),
                    headers=[("content-type", CONTENT_TYPE), *trace],
                ),
            )
        elif outcome.kind in ("refused", "our_fault"):
            failure = Failure(
                "apply", outcome.error_type or "ProviderError", outcome.detail, provider_error=outcome.provider_error
            )
            await self._dead_letter(dead_letters, record, failure)
        else:
            log.info("no answer before the deadline", provider=self.pid, lookup=str(decoded.data.lookup_id))

    async def _dead_letter(
        self, dead_letters: DeadLetterer, record: ConsumerRecord[bytes, bytes], failure: Failure
    ) -> None:
        try:
            await retry_until_stopped(self.stop, lambda: dead_letters.send(self.dlq, record, failure))
        except DeadLetterRefused as e:
            # Only this record's partition stops: its offset stays uncommitted (the others' go on), and the
            # worker says so in its log, its metric and /healthz; a restart tries the record again.
            worker_metrics.partition_stopped(
                f"bridge-{self.pid}", TopicPartition(record.topic, record.partition), str(e)
            )
            log.error("partition stopped: the dead letter was refused", provider=self.pid, error=str(e))
            raise Unfinished from e

    def _done(self, tp: TopicPartition, offset: int, task: asyncio.Task[None]) -> None:
        if task.cancelled() or isinstance(task.exception(), Unfinished):
            return
        if task.exception() is not None:
            self.failed = task.exception()
            log.error("bridge task failed", provider=self.pid, error=repr(task.exception()))
            self.stop.set()
            return
        self.tracker.finished(tp, offset)

    async def run(self) -> None:
        bootstrap = endpoints(self.settings).kafka_bootstrap_servers
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=300_000,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            fetch_min_bytes=self.settings.fetch_min_bytes,
        )
        dead_letters = DeadLetterer(bootstrap, self.group)
        tasks: set[asyncio.Task[None]] = set()
        reloading = asyncio.ensure_future(self.reload())
        async with started_producer(bootstrap) as producer:
            await consumer.start()
            pace = FetchPace(consumer)
            consumer.subscribe([self.requests], listener=_Forget(self.tracker))
            await dead_letters.start()
            try:
                while not self.stop.is_set():
                    room = self.bridge.directory.provider.max_in_flight * 4 - len(self.tracker)
                    assigned = list(consumer.assignment())
                    (consumer.pause if room <= 0 else consumer.resume)(*assigned)
                    batch = await consumer.getmany(
                        timeout_ms=self.settings.fetch_idle_after_ms, max_records=max(room, 1)
                    )
                    pace.traffic(sum(map(len, batch.values())))  # paced as the workers' consumers are
                    for tp, records in batch.items():
                        for r in records:
                            self.tracker.started(tp, r.offset)
                            task = asyncio.ensure_future(self.one(r, dead_letters, producer))
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                            task.add_done_callback(functools.partial(self._done, tp, r.offset))
                    metrics.IN_FLIGHT.labels(self.pid).set(len(self.tracker))
                    await self._commit(consumer)
            finally:
                reloading.cancel()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, reloading, return_exceptions=True)
                await self._commit(consumer)
                await asyncio.wait_for(consumer.stop(), self.settings.shutdown_timeout_seconds)
                await asyncio.wait_for(dead_letters.stop(), self.settings.shutdown_timeout_seconds)
                await self.bridge.client.aclose()
        if self.failed is not None:
            raise self.failed

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.tracker.to_commit()
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
            self.tracker.committed_at(offsets)
        except KafkaError as e:  # a rebalance under way, the broker away: the next round commits again
            log.info("offset commit deferred", provider=self.pid, error=str(e))


async def run_bridge(settings: Settings, provider_id: str, stop: asyncio.Event) -> None:
    if settings.switch_institution_id is None:
        raise PpuError("set PPU_SWITCH_INSTITUTION_ID to the switch's Electrum institution id (1-11 digits)")
    worker_metrics.serve(settings.metrics_port, settings.metrics_host)
    tracing.configure_from(settings, f"ppu-bridge-{provider_id}")
    pool = await create_pool(endpoints(settings).database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            directory = await load_directory(conn, provider_id)
        directory.provider.credentials()  # a missing credentials variable is one line now, not a refusal later
        await BridgeWorker(settings, directory, pool, stop).run()
    finally:
        await pool.close()
