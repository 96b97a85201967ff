"""`ppu faults` / `make faults`: every scenario, then a table; exit status 1 on any violated invariant."""

from __future__ import annotations

import asyncio

import click

from faults.scenarios import Outcome, kill_every, restart_broker_at, restart_postgres_at, scenario

N = 900


async def run_all() -> list[Outcome]:
    return [
        await scenario("SIGKILL lookup worker (mid-transaction or after commit)", N, kill_every("lookup", 250)),
        await scenario("SIGKILL outbox relay (after publish, before mark)", N, kill_every("outbox-relay", 250)),
        await scenario("SIGKILL response consumer", N, kill_every("responses", 250)),
        await scenario("every purchase attempt delivered 3 times", N // 3, copies=3),
        await scenario("poison messages among valid ones", N, poison=30),
        await scenario("restart PostgreSQL under load", N, restart_postgres_at(N // 3)),
        await scenario("restart the Kafka broker under load", N, restart_broker_at(N // 3)),
    ]


@click.command()
def faults() -> None:
    """Run the fault scenarios against real processes and check the invariants."""
    outcomes = asyncio.run(run_all())
    click.echo(
        f"| {'scenario':55} | messages | faults | lost | duplicated | stale | unpublished | valid DLQ "
        "| poison not once | result |"
    )
    click.echo("|" + "---|" * 10)
    for o in outcomes:
        v = o.verdict
        click.echo(
            f"| {o.scenario:55} | {o.messages:8} | {o.faults:6} | {v.lost:4} | {v.duplicated:10} | "
            f"{v.stale_overwrites:5} | {v.unpublished:11} | {v.valid_dead_lettered:9} | "
            f"{v.poison_not_exactly_once:15} | "
            f"{'pass' if v.ok else 'FAIL'} |"
        )
    if not all(o.verdict.ok for o in outcomes):
        raise click.exceptions.Exit(1)
