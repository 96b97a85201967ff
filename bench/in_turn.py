"""Ratios of one flow against another measured in turn: each variant's lookup flow beside the 10k-meter one, several
times over, the order rotated each turn, and the ratio the median of each turn's own.

One flow against another measured minutes apart on this shared 2-core machine moved by more than the difference it
was there to show: the same code's 10k flow ran at 3,560-5,810 attempts/s in three runs of one stop, and the 1M/10k
ratio at 0.58-1.30. Measured side by side, both sides share the machine's drift.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench import flows
from bench.env import BenchEnv, prepare_topics
from bench.process_usage import RssSampler


@dataclass(frozen=True)
class Variant:
    env: BenchEnv  # its database (its meters known and supported), reused each turn under topics of the turn's own
    meters: int
    workers: int = 1  # lookup workers, and as many relays
    poison_every: int = 0  # a poison message after every this many attempts (0: none)


async def in_turn(
    base: Variant, variants: dict[str, Variant], n: int, turns: int = 3
) -> tuple[dict[str, float], list[RssSampler]]:
    """`lookup_flow_<name>_turn<i>_per_s` for the base ("10k") and each variant, each variant's median rate
    (`lookup_flow_<name>_per_s`) and `<name>_vs_10k` (the median of the turns' ratios); and the workers' memory
    over every flow."""
    named = {"10k": base, **variants}
    out: dict[str, float] = {}
    memory: list[RssSampler] = []
    for i in range(1, turns + 1):
        order = list(named)
        order = order[(i - 1) % len(order) :] + order[: (i - 1) % len(order)]  # no variant always first
        for name in order:
            v = named[name]
            env = await prepare_topics(v.env, f"t{i}{name.replace('_', '')}")
            rate, rss = await flows.lookup_flow(
                env, n, v.meters, workers=v.workers, relays=v.workers, poison_every=v.poison_every
            )
            out[f"lookup_flow_{name}_turn{i}_per_s"] = rate
            memory.append(rss)
    for name in variants:
        each = range(1, turns + 1)
        rates = [out[f"lookup_flow_{name}_turn{i}_per_s"] for i in each]
        out[f"lookup_flow_{name}_per_s"] = statistics.median(rates)
        out[f"{name}_vs_10k"] = statistics.median(
            r / out[f"lookup_flow_10k_turn{i}_per_s"] for i, r in zip(each, rates, strict=True)
        )
    return out, memory
