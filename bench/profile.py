"""`ppu bench --only profile`: where the lookup flow spends its time, before anything is cut.

The lookup worker and the outbox relay run the backlog flow under py-spy (a sampling profiler: it reads the
processes from outside, so what is measured is not changed by measuring it), and PostgreSQL counts statements with
pg_stat_statements when the server preloads it (the local stack does). The top of each is written beside the
bench results.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from bench import flows
from bench.env import BenchEnv

# The leaf frame's file decides whose code a CPU sample was spent in.
OWNERS = [
    ("asyncpg", "asyncpg"),
    ("aiokafka", "aiokafka"),
    ("kafka/", "aiokafka"),
    ("pydantic", "pydantic"),
    ("jsonschema_rs", "jsonschema-rs"),
    ("json/", "json"),
    ("uuid.py", "uuid"),
    ("asyncio/", "asyncio"),
    ("structlog", "structlog"),
    ("prometheus_client", "prometheus-client"),
    ("opentelemetry", "opentelemetry"),
]
PROJECT = ("workers/", "domain/", "messaging/", "schemas/", "kernel/", "db/")


def owner(frame: str) -> str:
    where = frame.rsplit("(", 1)[-1]
    for part, name in OWNERS:
        if part in where:
            return name
    if any(p in where for p in PROJECT) and "site-packages" not in where:
        return "project"
    return "python (other)"


def summarise(raw: Path, top: int = 25) -> str:
    """py-spy's raw (collapsed) stacks → shares by owner, the hottest functions by self time, and by total."""
    own: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    total_time: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n, frames = int(count), stack.split(";")
        samples += n
        own[owner(frames[-1])] += n
        self_time[frames[-1]] += n
        for f in set(frames):
            total_time[f] += n
    if not samples:
        return "no samples\n"
    out = [f"{samples} samples\n", "| whose code (leaf frame) | share |", "|---|---:|"]
    out += [f"| {k} | {v / samples:.1%} |" for k, v in own.most_common()]
    out += ["", "| hottest by self time | share |", "|---|---:|"]
    out += [f"| `{k}` | {v / samples:.1%} |" for k, v in self_time.most_common(top)]
    out += ["", "| hottest by total time (self and callees) | share |", "|---|---:|"]
    out += [f"| `{k}` | {v / samples:.1%} |" for k, v in total_time.most_common(top)]
    return "\n".join(out) + "\n"


async def statements_on(env: BenchEnv) -> str | None:
    """Counts this database's statements from now; None if the server does not preload pg_stat_statements."""
    conn = await env.db()
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        name = await conn.fetchval("SELECT quote_ident(current_database())")
        await conn.execute(f"ALTER DATABASE {name} SET pg_stat_statements.track = 'top'")
        # Planning counted too: the workers plan every statement for its own arguments (force_custom_plan).
        await conn.execute(f"ALTER DATABASE {name} SET pg_stat_statements.track_planning = on")
        await conn.execute("SELECT pg_stat_statements_reset()")
        return None
    except asyncpg.PostgresError as e:
        return f"pg_stat_statements unavailable: {e}"
    finally:
        await conn.close()


async def statements_top(env: BenchEnv, n: int, top: int = 15) -> str:
    conn = await env.db()
    try:
        rows = await conn.fetch(
            """SELECT calls, total_exec_time, mean_exec_time, total_plan_time, rows,
                      shared_blks_hit + shared_blks_read AS blocks, regexp_replace(query, '\\s+', ' ', 'g') AS q
               FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid WHERE d.datname = current_database()
               ORDER BY total_exec_time + total_plan_time DESC LIMIT $1""",
            top,
        )
    finally:
        await conn.close()
    out = [
        "| calls | total ms | mean ms | µs per attempt | planning µs per attempt | buffers per attempt | rows "
        "| statement |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        q = r["q"][:150].replace("|", "\\|")
        per, planning = r["total_exec_time"] * 1000 / n, r["total_plan_time"] * 1000 / n
        times = f"{r['total_exec_time']:.0f} | {r['mean_exec_time']:.3f} | {per:.1f} | {planning:.1f}"
        out.append(f"| {r['calls']} | {times} | {r['blocks'] / n:.1f} | {r['rows']} | `{q}` |")
    return "\n".join(out) + "\n"


async def profile_lookup(env: BenchEnv, n: int, out_dir: Path) -> dict[str, Any]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("py-spy is not installed: `make bench-extras` installs it")
    await flows.preload_meters(env, 10_000)
    no_statements = await statements_on(env)
    raws = {"lookup-worker": out_dir / "lookup-worker.raw", "outbox-relay": out_dir / "outbox-relay.raw"}

    @contextlib.asynccontextmanager
    async def spied(pids: list[int]) -> AsyncIterator[None]:
        spies = [
            subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
                [spy, "record", "--format", "raw", "--rate", "200", "--nonblocking", "-o", str(raw), "--pid", str(pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for raw, pid in zip(raws.values(), pids, strict=True)
        ]
        try:
            yield
        finally:
            for s in spies:
                s.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            for s in spies:
                await asyncio.to_thread(s.wait, 30)

    us = await flows.lookup_cpu(env, n, 10_000, around=spied)
    parts = [f"CPU µs per attempt while {n:,} attempts flowed (backlog):\n"]
    parts += [f"- {k}: {v:.0f}" for k, v in us.items()]
    parts.append(f"- summed: {sum(us.values()):.0f}\n")
    for name, raw in raws.items():
        parts.append(f"## py-spy: {name}\n\n{summarise(raw) if raw.exists() else 'no profile written'}")
    parts.append(f"## pg_stat_statements (top by total time)\n\n{no_statements or await statements_top(env, n)}")
    return {"cpu_us_per_attempt_by_process": us, "text": "\n".join(parts)}
