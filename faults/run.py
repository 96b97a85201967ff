"""`ppu faults` / `make faults`: every scenario, then a table; exit status 1 on any violated invariant."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bench.env import PROVIDERS, drop_previous_runs
from faults.cluster_faults import cluster_plan
from faults.hostile import hostile_records
from faults.injections import (
    block_past_poll_interval,
    change_membership,
    cut_db_connections_every,
    kill_every,
    operator_commands,
    restart_broker_at,
    restart_postgres_at,
)
from faults.scenarios import DEADLINE_SECONDS, RECOVERY_LIMIT, SETTLE_LIMIT, STEADY, ScenarioResult, scenario
from providers.kafka_simulator import Coverage

N = 900
LATE_MS = (DEADLINE_SECONDS * 1000 + 500, DEADLINE_SECONDS * 1000 + 3000)
# Answers overtake each other (latency up to 1.5 deadlines, so a third arrive after their round closed) and
# every answer is sent twice.
SHUFFLED = Coverage(STEADY.supports, STEADY.utility_name, latency_ms=(0, DEADLINE_SECONDS * 1500), copies=2)
TROUBLED = dict(
    zip(
        PROVIDERS,
        [
            STEADY,
            STEADY,
            Coverage(STEADY.supports, silent=True),  # down: never answers
            Coverage(STEADY.supports, latency_ms=LATE_MS),  # answers, always after the deadline
            Coverage(STEADY.supports, garbage_rate=0.5),  # half its answers are garbage
        ],
        strict=True,
    )
)


# Provider hosts whose clocks are a day ahead or behind (two each way), one on time.
SKEWED = dict(
    zip(
        PROVIDERS,
        [Coverage(STEADY.supports, STEADY.utility_name, clock_offset_s=s) for s in (86400, -86400, 86400, -86400, 0)],
        strict=True,
    )
)


# Each scenario's arguments, made only when it runs (the restart faults need the local stack).
PLAN: dict[str, Callable[[], dict[str, Any]]] = {
    "SIGKILL lookup worker mid-transaction": lambda: {"failpoint": ("lookup", "mid_transaction:5")},
    "SIGKILL lookup worker after DB commit, before Kafka commit": lambda: {
        "failpoint": ("lookup", "after_db_commit:5")
    },
    "SIGKILL response consumer after DB commit, before Kafka commit": lambda: {
        "failpoint": ("responses", "after_db_commit:2")  # it applies fewer, larger batches
    },
    "SIGKILL outbox relay after publish, before marking sent": lambda: {
        "failpoint": ("outbox-relay", "after_publish:5")
    },
    "SIGKILL lookup, responses, relay at random moments": lambda: {
        "inject": kill_every(["lookup", "responses", "outbox-relay"], 150)
    },
    "members join and leave mid-batch (rebalances)": lambda: {"inject": change_membership(N)},
    "a batch blocked past the poll interval (2 members)": lambda: {
        "inject": block_past_poll_interval(N // 3, 10),
        "worker_env": {"PPU_MAX_POLL_INTERVAL_MS": "6000"},
        "extra": ["lookup"],
    },
    "restart PostgreSQL under load": lambda: {"inject": restart_postgres_at(N // 3)},
    "restart the Kafka broker under load": lambda: {"inject": restart_broker_at(N // 3)},
    "cut DB connections mid-transaction and mid-commit": lambda: {"inject": cut_db_connections_every(300)},
    "every purchase attempt delivered 3 times": lambda: {"n": N // 3, "copies": 3},
    "answers shuffled, twice, late; commands twice, reordered": lambda: {
        "load": operator_commands(50, 8),
        "providers": dict.fromkeys(PROVIDERS, SHUFFLED),
    },
    "poison messages among valid ones": lambda: {"poison": 30},
    "providers down, slow past the deadline, answering garbage": lambda: {"providers": TROUBLED},
    "records as large as the broker takes, on every consumed topic": lambda: {
        "inject": hostile_records(N // 3, PROVIDERS[-1]),
        "http_provider": PROVIDERS[-1],
    },
    "a strict-schema storm on every consumed topic": lambda: {
        "inject": hostile_records(N // 3, PROVIDERS[-1], storm=True),
        "http_provider": PROVIDERS[-1],
    },
    "provider clocks a day off, worker host clocks 30 s off": lambda: {
        "providers": SKEWED,
        "clock_off": {"lookup": "+30s", "responses": "-30s", "commands": "+30s"},
        "load": operator_commands(50, 8),
    },
}


async def run_all(only: re.Pattern[str] | None, plan: dict[str, Callable[[], dict[str, Any]]]) -> list[ScenarioResult]:
    return [await scenario(name, **{"n": N, **args()}) for name, args in plan.items() if not only or only.search(name)]


RESULTS = Path(__file__).resolve().parent / "results"


def write_results(outcomes: list[ScenarioResult], table: list[str]) -> list[Path]:
    """faults/results/<timestamp>.{json,md}, like the benchmarks' results; the commit they measured included."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    rows = [
        {
            "scenario": o.scenario,
            "messages": o.messages,
            "faults": o.faults,
            **asdict(o.verdict),
            "recovery_s": o.recovery_s,
            "settle_s": o.settle_s,
            "ok": o.ok,
        }
        for o in outcomes
    ]
    json_path, md_path = RESULTS / f"{stamp}.json", RESULTS / f"{stamp}.md"
    json_path.write_text(json.dumps({"commit": commit, "at": stamp, "scenarios": rows}, indent=2) + "\n")
    md_path.write_text(f"# make faults, {stamp} (commit {commit[:12]})\n\n" + "\n".join(table) + "\n")
    return [json_path, md_path]


def _cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"


@click.command()
@click.option("--only", default=None, help="run the scenarios whose name matches this regular expression")
@click.option("--cluster", is_flag=True, help="the cluster scenarios (needs `ppu stack up --brokers 3 --standby`)")
def faults(only: str | None, cluster: bool) -> None:
    """Run the fault scenarios against real processes and check the invariants."""
    try:
        pattern = re.compile(only) if only else None
    except re.error as e:
        raise click.BadParameter(str(e), param_hint="--only") from None
    asyncio.run(drop_previous_runs())  # earlier runs' databases and topics (bench/env.py)
    outcomes = asyncio.run(run_all(pattern, cluster_plan(N) if cluster else PLAN))
    if not outcomes:
        raise click.BadParameter(f"no scenario matches {only!r}", param_hint="--only")
    head = ["scenario", "messages", "faults", "lost", "duplicated", "stale", "unpublished", "unapplied", "valid DLQ"]
    head += ["poison not once", "commands not once", "flags stuck", "support rows wrong"]
    head += ["recovery s", "settle s", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes:
        v = o.verdict
        cells = [o.scenario, o.messages, o.faults, v.lost, v.duplicated, v.stale_overwrites, v.unpublished, v.unapplied]
        cells += [v.valid_dead_lettered, v.poison_not_exactly_once, v.commands_not_once, v.flags_stuck]
        cells += [v.summaries_wrong]
        cells += [_cell(o.recovery_s), _cell(o.settle_s), "pass" if o.ok else "FAIL"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append(
        f"recovery: slowest return to progress after a fault (limit {RECOVERY_LIMIT:.0f} s); "
        f"settle: last message sent to all decided and published (limit {SETTLE_LIMIT:.0f} s)"
    )
    click.echo("\n".join(lines))
    written = write_results(outcomes, lines)
    click.echo(f"results: {', '.join(str(p) for p in written)}")
    if not all(o.ok for o in outcomes):
        raise click.exceptions.Exit(1)
