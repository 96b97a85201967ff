"""Runs workers in this process: wires settings, pool and clients, handles SIGTERM/SIGINT, bounded shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Coroutine
from typing import Any

import structlog

from db.partitions import retention
from kernel import tracing
from kernel.connections import create_pool, endpoints, started_producer
from kernel.settings import Settings
from messaging import metrics
from messaging.retrying import patiently
from workers.failpoints import Failpoints
from workers.outbox_relay import open_relay_pool, run_relay
from workers.registry import CONSUMERS, consumer_flow
from workers.runtime import ConsumerRuntime
from workers.sweeper import run_sweeper

log = structlog.get_logger()


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets: how every long-running command stops cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def session_settings(settings: Settings) -> dict[str, str]:
    """What every worker session sets for itself (docs/deployment.md lists them, and why)."""
    plans = {
        "plan_cache_mode": settings.db_plan_cache_mode,
        # Every statement of a worker reads a few rows by key. Allowed parallel workers, PostgreSQL planned the read of
        # a batch's attempt ids over a week of history as parallel sequential scans: 67 ms instead of 16 per batch.
        "max_parallel_workers_per_gather": "0",
        "random_page_cost": str(settings.db_random_page_cost),
        # Key reads of a few rows: compiling a statement (JIT) would cost more than running it.
        "jit": "off",
    }
    if settings.db_plan_cache_mode != "force_custom_plan":
        # A generic plan is made once per session, on the tables as they are then: on a new install, nearly empty,
        # where a sequential scan is the cheapest read, and it would stay one as they grow (the plan trap of issue
        # #17). With sequential scans priced out it is an index read (tests/test_generic_plans.py); that it reads by
        # key and not a whole index range takes statistics of the tables as they fill: the sweeper analyses young
        # tables within seconds (db/young_tables.py, tests/test_plans_as_tables_grow.py).
        plans["enable_seqscan"] = "off"
    return plans


async def run_workers(names: list[str], settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Runs until `stop` is set (by SIGTERM/SIGINT when the caller passes none) or a worker fails."""
    keep = retention(settings.retention_days)  # a wrong setting stops us before anything starts
    if stop is None:
        stop = stop_on_signals()
    where = endpoints(settings)
    metrics.serve(settings.metrics_port, settings.metrics_host)
    tracing.configure_from(settings, "ppu-workers")
    plans = session_settings(settings)
    pool = await patiently(
        lambda: create_pool(
            where.database_url, min_size=1, max_size=4 + 2 * len(names), server_settings=plans, keep_sessions=True
        )
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            relay_pool = pool
            if "outbox-relay" in names:  # sessions of its own settings (workers/outbox_relay.py)
                relay_pool = await patiently(lambda: open_relay_pool(where.database_url, plans))
                stack.push_async_callback(relay_pool.close)
            # A broker restarting as we start is waited for; a failed try leaves nothing open in the stack.
            # No linger: the relay appends a whole cycle's rows before it yields, so the producer's sender, which runs
            # only then, batches them anyway; lingering would only add its milliseconds to every message.
            shared = await patiently(
                lambda: stack.enter_async_context(started_producer(where.kafka_bootstrap_servers, linger_ms=0))
            )
            jobs: list[Coroutine[Any, Any, None]] = []
            for name in names:
                if name in CONSUMERS:
                    runtime = ConsumerRuntime(
                        consumer_flow(name, settings), settings, pool, where.kafka_bootstrap_servers
                    )
                    jobs.append(runtime.run(stop))
                elif name == "sweeper":
                    jobs.append(
                        run_sweeper(
                            pool,
                            settings.topic_prefix,
                            stop,
                            budget_seconds=settings.decision_budget_seconds,
                            recheck_every=settings.auto_recheck_every_seconds,
                            keep=keep,
                        )
                    )
                elif name == "outbox-relay":
                    jobs.append(
                        run_relay(
                            relay_pool, shared, stop, where.database_url, failpoints=Failpoints(settings.failpoints)
                        )
                    )
            log.info("workers started", workers=names)
            # Everything loaded so far lives as long as the process: out of the collector's sight (gc.freeze), and
            # collections of the young generation only every 50,000 allocations instead of 700 — a batch makes
            # thousands of short-lived objects and must make no reference cycles: cyclic garbage piles up between
            # collections and is freed all at once, a pause of tens of ms (tests/test_cyclic_garbage.py).
            gc.freeze()
            gc.set_threshold(50_000, 20, 20)
            tasks = [asyncio.ensure_future(j) for j in jobs]
            await asyncio.wait([*tasks, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            stop.set()  # one worker ending (or failing) ends them all: a supervisor restarts the process
            _, late = await asyncio.wait(tasks, timeout=settings.shutdown_timeout_seconds) if tasks else (set(), set())
            for t in late:
                t.cancel()
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
    finally:
        await asyncio.wait_for(pool.close(), settings.shutdown_timeout_seconds)
        log.info("workers stopped", workers=names)
