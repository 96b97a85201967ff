"""`python -m bench.upgrade_fill [METERS]`: an upgrade over migration 0020 on an install of METERS meters (five
support rows each), timed, while another session locks a random meter every 20 ms as the hot path does: how long
those locks waited (docs/deployment.md, "Each meter's support on its row")."""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from db.migrate import MIGRATIONS, migrate
from kernel.connections import endpoints
from kernel.settings import Settings

FILL = [
    "INSERT INTO providers (provider_id, name) SELECT 'bp' || p, 'bp' || p FROM generate_series(1, 5) p",
    "INSERT INTO meters (meter_number) SELECT '06' || lpad(g::text, 8, '0') FROM generate_series(0, $1 - 1) g",
    """INSERT INTO meter_support (meter_number, provider_id, status, last_response_at)
       SELECT '06' || lpad(g::text, 8, '0'), 'bp' || p,
              CASE WHEN p = g % 5 + 1 THEN 'supported' ELSE 'not_supported' END, now()
       FROM generate_series(0, $1 - 1) g, generate_series(1, 5) p""",
]


async def _locks_meanwhile(conn: asyncpg.Connection, meters: int, done: asyncio.Event) -> list[float]:
    waits = []
    while not done.is_set():
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                "SELECT 1 FROM meters WHERE meter_number = $1 FOR UPDATE", f"06{random.randrange(meters):08d}"
            )
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return waits


async def main(meters: int) -> None:
    base = endpoints(Settings()).database_url
    name = f"bench_upgrade_{int(time.time())}"  # dropped by the next bench run (bench/env.drop_previous_runs)
    admin = await asyncpg.connect(base)
    await admin.execute(f"CREATE DATABASE {name}")
    url = base.rsplit("/", 1)[0] + "/" + name
    db, other = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        before = Path(tempfile.mkdtemp())
        for m in sorted(MIGRATIONS.glob("*.sql")):
            if int(m.name[:4]) < 20:
                before.joinpath(m.name).write_text(m.read_text())
        await migrate(db, before)
        for sql in FILL:
            await db.execute(sql, *([meters] if "$1" in sql else []))
        await db.execute("VACUUM ANALYZE")
        done = asyncio.Event()
        locking = asyncio.ensure_future(_locks_meanwhile(other, meters, done))
        started = time.perf_counter()
        await migrate(db)
        took = time.perf_counter() - started
        done.set()
        waits = sorted(w * 1000 for w in await locking)
        p99 = statistics.quantiles(waits, n=100)[98] if len(waits) > 1 else waits[-1]
        print(
            f"upgrade over {meters:,} meters: {took:.1f} s; {len(waits)} meter locks meanwhile waited "
            f"p50 {statistics.median(waits):.1f} ms, p99 {p99:.1f} ms, max {waits[-1]:.1f} ms"
        )
    finally:
        await db.close()
        await other.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
