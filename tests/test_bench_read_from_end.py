"""The bench's reader on topics measured before (`ppu bench --only cold-start`, the restarted run): it leaves out the
records already there and counts every new one, the first included."""

from __future__ import annotations

import asyncio

from bench.measure import read_until
from kernel.connections import started_producer
from kernel.settings import Settings
from kernel.topics import topic


async def test_reading_from_the_end_leaves_the_old_records_out_and_misses_no_new_one(
    settings: Settings, topics: list[str]
) -> None:
    assert settings.kafka_bootstrap_servers is not None
    bootstrap = settings.kafka_bootstrap_servers
    names = [topic("lookup_requests").name(settings.topic_prefix, provider_id=p) for p in ("p1", "p2")]
    async with started_producer(bootstrap) as producer:
        for name in names:
            for i in range(5):
                await producer.send_and_wait(name, b"old", key=f"k{i}".encode())
        joined = asyncio.Event()
        seen: list[bytes] = []
        reader = asyncio.ensure_future(
            read_until(
                bootstrap,
                names,
                6,
                "test",
                within=60,
                ready=joined,
                from_end=True,
                on_record=lambda r, _: seen.append(r.value or b""),
            )
        )
        await asyncio.wait_for(joined.wait(), 30)
        for i in range(6):  # sent as soon as the reader says it is ready: none may be missed
            await producer.send_and_wait(names[i % 2], f"new{i}".encode(), key=f"k{i}".encode())
        stamps = await asyncio.wait_for(reader, 60)
    assert len(stamps) == 6
    assert sorted(seen) == sorted(f"new{i}".encode() for i in range(6))
