"""`python -m bench.upgrade_fill [METERS]`: an upgrade over migration 0020 on an install of METERS meters (five
support rows each), timed, while another session locks a random meter every 20 ms as the hot path does: how long
those locks waited (docs/deployment.md, "Each meter's support on its row")."""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg

from bench.env import PROVIDERS, drop_database, other_database, server_admin
from bench.flows import add_meters, known_meter
from bench.measure import percentiles
from db.migrate import migrate
from kernel.connections import endpoints
from kernel.settings import Settings


async def _locks_meanwhile(conn: asyncpg.Connection, meters: int, done: asyncio.Event) -> list[float]:
    waits = []
    while not done.is_set():
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM meters WHERE meter_number = $1 FOR UPDATE", known_meter(meters))
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return waits


async def main(meters: int) -> None:
    base = endpoints(Settings()).database_url
    name = f"bench_upgrade_{int(time.time())}"  # dropped by the next bench run (bench/env.drop_previous_runs)
    async with server_admin(base) as admin:
        await admin.execute(f"CREATE DATABASE {name}")
        url = other_database(base, name)
        db, other = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            await migrate(db, before=20)
            await db.executemany("INSERT INTO providers (provider_id, name) VALUES ($1, $1)", [(p,) for p in PROVIDERS])
            await add_meters(db, meters)
            done = asyncio.Event()
            locking = asyncio.ensure_future(_locks_meanwhile(other, meters, done))
            started = time.perf_counter()
            await migrate(db)
            took = time.perf_counter() - started
            done.set()
            waits = [w * 1000 for w in await locking]
            found = percentiles(waits)
            print(
                f"upgrade over {meters:,} meters: {took:.1f} s; {len(waits)} meter locks meanwhile waited "
                f"p50 {found['p50']:.1f} ms, p99 {found['p99']:.1f} ms, max {max(waits):.1f} ms"
            )
        finally:
            await db.close()
            await other.close()
            await drop_database(admin, name)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
