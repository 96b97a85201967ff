"""The simulated providers of a benchmark, in a process of their own.

Not in the bench's own event loop: that loop also reads the figures' records and stamps their arrival, so answering
for five providers there delayed those stamps (record → reader up to 122 ms at 20 attempts/s), a lag the purchase
service, a process of its own, never has.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections.abc import Iterator, Mapping
from multiprocessing.synchronize import Event

from providers.kafka_simulator import Coverage, run_simulator

STARTED_WITHIN_S = 30.0


@contextlib.contextmanager
def providers_apart(bootstrap: str, prefix: str, coverages: Mapping[str, Coverage]) -> Iterator[None]:
    """Runs one simulator per provider in a child process until the block ends; answers in flight are delivered."""
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no event loop or sockets inherited
    started = spawn.Event()
    child = spawn.Process(target=_serve, args=(bootstrap, prefix, dict(coverages), started), daemon=True)
    child.start()
    try:
        if not started.wait(STARTED_WITHIN_S):
            raise RuntimeError(f"the simulated providers did not start within {STARTED_WITHIN_S:.0f} s")
        yield
    finally:
        if child.is_alive():
            child.terminate()  # SIGTERM: they stop reading and deliver what is on its way
        child.join(15)
        if child.is_alive():
            child.kill()
            child.join(5)


def _serve(bootstrap: str, prefix: str, coverages: dict[str, Coverage], started: Event) -> None:
    asyncio.run(_simulate(bootstrap, prefix, coverages, started))


async def _simulate(bootstrap: str, prefix: str, coverages: dict[str, Coverage], started: Event) -> None:
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    sims = [asyncio.ensure_future(run_simulator(bootstrap, prefix, p, c, done)) for p, c in coverages.items()]
    started.set()
    await asyncio.gather(*sims)
