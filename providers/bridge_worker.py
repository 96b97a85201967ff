"""`ppu worker provider-bridge --provider ID`: runs the HTTP bridge for one provider.

Kafka offsets are committed after every request of a batch has its outcome (published, dead-lettered or given
up at the deadline): a crash re-sends lookups, which the provider's DUPLICATE_RECORD or our response consumer's
staleness rules make harmless.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from ppu.dbconn import Db
from ppu.errors import PpuError
from ppu.settings import Settings
from ppu.topics import topic
from ppu.wiring import endpoints, started_producer
from providers.http_bridge import Bridge, Endpoint, as_event
from schemas.envelope import CONTENT_TYPE
from schemas.lookup import LookupRequested
from workers.dead_letters import DeadLetterer, Failure
from workers.inbound import decode

log = structlog.get_logger()


async def load_endpoint(conn: Db, provider_id: str) -> Endpoint:
    row = await conn.fetchrow("SELECT * FROM providers WHERE provider_id = $1", provider_id)
    if row is None:
        raise PpuError(f"unknown provider {provider_id}")
    if row["integration_mode"] != "http" or not row["base_url"]:
        raise PpuError(f"provider {provider_id} does not integrate over HTTP (no base URL)")
    secret = os.environ.get(row["credentials_ref"] or "", "")
    user, sep, password = secret.partition(":")
    if not sep:
        raise PpuError(f"set {row['credentials_ref'] or 'the credentials variable'} to USER:PASSWORD for {provider_id}")
    return Endpoint(
        provider_id, row["name"], row["base_url"], user, password, row["timeout_ms"] / 1000, row["max_in_flight"]
    )


async def run_bridge(settings: Settings, endpoint: Endpoint, stop: asyncio.Event) -> None:
    bootstrap, prefix, pid = endpoints(settings).kafka_bootstrap_servers, settings.topic_prefix, endpoint.provider_id
    group = f"{prefix}ppu-provider-bridge-{pid}"
    requests = topic("lookup_requests").name(prefix, provider_id=pid)
    dlq = topic("lookup_requests_dlq").name(prefix, provider_id=pid)
    responses = topic("lookup_responses").name(prefix)
    consumer = AIOKafkaConsumer(
        requests,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=300_000,
    )
    dead_letters = DeadLetterer(bootstrap, group)
    auth = httpx.BasicAuth(endpoint.username, endpoint.password)
    async with (
        httpx.AsyncClient(base_url=endpoint.base_url, auth=auth) as client,
        started_producer(bootstrap) as producer,
    ):
        bridge = Bridge(endpoint, settings, client)

        async def one(record: ConsumerRecord[bytes, bytes]) -> None:
            decoded = decode(record, LookupRequested, settings.max_message_bytes)
            if isinstance(decoded, Failure):
                await dead_letters.send(dlq, record, decoded)
                return
            assert isinstance(decoded, LookupRequested)
            outcome = await bridge.lookup(decoded)
            if outcome.kind in ("supported", "not_supported"):
                event = as_event(decoded, outcome)
                await producer.send_and_wait(
                    responses,
                    value=event.encode(),
                    key=event.subject.encode(),
                    headers=[("content-type", CONTENT_TYPE)],
                )
            elif outcome.kind == "our_fault":
                error_class = outcome.error.error_type if outcome.error else "ProviderError"
                await dead_letters.send(dlq, record, Failure("apply", error_class, outcome.detail))
            else:
                log.info(
                    "no answer before the deadline",
                    provider=pid,
                    lookup=str(decoded.data.lookup_id),
                    detail=outcome.detail,
                )

        await consumer.start()
        await dead_letters.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=endpoint.max_in_flight * 4)
                records = [r for rs in batch.values() for r in rs]
                if records:
                    await asyncio.gather(*(one(r) for r in records))
                    await consumer.commit()
        finally:
            await asyncio.wait_for(consumer.stop(), settings.shutdown_timeout_seconds)
            await asyncio.wait_for(dead_letters.stop(), settings.shutdown_timeout_seconds)
