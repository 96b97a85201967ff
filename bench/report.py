"""The results: JSON (the keys the issue names, plus the raw rates), a Markdown table, and PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

TARGETS = {  # issue #17's table where it names a figure
    "lookup_flow_ratio_to_floor": (">=", 0.3),
    "response_flow_ratio_to_floor": (">=", 0.5),
    "lookup_flow_ratio_to_faust": (">=", 3.0),
    "lookup_p99_ms_at_1000": ("<", 50.0),  # steady state, after the warm-up
    "lookup_cold_p99_ms_at_1000": ("report", 0.0),  # the first second, apart
    "lookup_p50_first_steady_s_ms_at_1000": ("report", 0.0),  # with the last: does a backlog grow?
    "lookup_p50_last_s_ms_at_1000": ("report", 0.0),
    "lookup_p99_median_s_ms_at_1000": ("report", 0.0),  # each steady second's p99: their median and the worst
    "lookup_p99_worst_s_ms_at_1000": ("report", 0.0),
    "response_p99_ms_at_1000": ("<", 50.0),
    "first_seen_decision_p99_ms": ("<=", 2100.0),  # the default 2 s decision budget + 100 ms (#17: "≤ budget + 100")
    "first_seen_decision_cold_p99_ms": ("report", 0.0),  # the first second, apart
    "first_seen_decisions_lost": ("<=", 0.0),  # every attempt decided
    "lookup_1m_vs_10k_ratio": (">=", 0.9),
    "lookup_10m_history_vs_empty_ratio": (">=", 0.9),
    "poison_1pct_vs_clean_ratio": (">=", 0.9),  # good messages' throughput unaffected by poison among them
    "worker_rss_mb_peak": ("<", 200.0),
    "soak_rss_growth_mb": ("<", 20.0),
    "search_p99_ms_1m": ("<", 20.0),
    "scale_out_2_vs_1_ratio": (">=", 1.0),  # two lookup workers and two relays against one of each
    "scale_out_4_vs_1_ratio": ("report", 0.0),
    "cpu_us_per_attempt": ("<=", 100.0),  # summed over every process of the flow, start-up not counted
    "cpu_us_per_attempt_at_1000": ("report", 0.0),  # the same, during the paced latency run: small batches
    "floor_relay_cpu_us_per_message": ("report", 0.0),  # a plain aiokafka relay and the broker, per message
    "cpu_per_attempt_vs_floor_relay_message": ("report", 0.0),  # cpu_us_per_attempt over the line above
    # What the paced run shared the machine with: the local broker's collector pauses and compiling during it, and how
    # many partitions the broker held when the run began.
    "broker_gc_pauses_at_1000": ("report", 0.0),
    "broker_gc_pause_ms_at_1000": ("report", 0.0),
    "broker_jit_s_at_1000": ("report", 0.0),
    "broker_partitions_at_start": ("report", 0.0),
}


def meets(key: str, value: float) -> bool:
    """Whether `value` meets the target of `key` (one with a target: not "report")."""
    op, target = TARGETS[key]
    return value >= target if op == ">=" else value <= target if op == "<=" else value < target


def verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    if op == "report" or not math.isfinite(value):
        return "reported"
    return ("met" if meets(key, value) else "missed") + f" ({op} {target:g})"


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Commit measured: `{results.get('commit', 'unknown')}`", ""]
    if "faust_streaming_version" in results:
        lines[-1:] = [f"Peer: faust-streaming {results['faust_streaming_version']} (bench/faust_app.py)", ""]
    lines += ["| figure | value | target |", "|---|---:|---|"]
    lines += [f"| `{k}` | {results[k]:.3f} | {verdict(k, results[k])} |" for k in TARGETS if k in results]
    # The first second's figures without a target of their own (`--only cold-start`, the stages of a cold start).
    cold = [k for k, v in results.items() if "cold" in k and k not in TARGETS and isinstance(v, float)]
    lines += [f"| `{k}` | {results[k]:.3f} | reported |" for k in cold]
    lines += ["", "| raw rate | per second |", "|---|---:|"]
    lines += [f"| `{k}` | {v:,.0f} |" for k, v in results.items() if k.endswith("_per_s")]
    if "lookup_flow_cpu_cores" in results:
        lines += ["", "| CPU cores used during the lookup flow | cores |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in sorted(results["lookup_flow_cpu_cores"].items())]
    if "cpu_us_per_attempt_by_part" in results:
        lines += ["", "| CPU µs per attempt, by part of the lookup flow | µs |", "|---|---:|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in sorted(results["cpu_us_per_attempt_by_part"].items())]
        if aside := results.get("cpu_steps_set_aside_while_compiling"):
            compiled = ", ".join(f"{a['kafka_jit_s']:.2f}" for a in aside)
            lines += ["", f"Measured after {len(aside)} CPU step(s) set aside, the broker compiling {compiled} s."]
    if "floor_relay_cpu_us_per_message_by_part" in results:
        lines += ["", "| CPU µs per message, by part of the floor relay | µs |", "|---|---:|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in sorted(results["floor_relay_cpu_us_per_message_by_part"].items())]
    for key in (k for k in results if k.startswith("lookup_slowest_windows_at_")):
        heads = "ms | worker | relay | broker | idle | CPU pressure ms"
        lines += ["", f"| slowest 100 ms windows (`{key}`), UTC | {heads} |", "|---|---:|---:|---:|---:|---:|---:|"]
        cells = ("at", "ms", "worker_ms", "relay_ms", "broker_ms", "idle", "cpu_pressure_ms")
        lines += ["| " + " | ".join(str(w.get(c, "-")) for c in cells) + " |" for w in results[key]]
    paced = {k: v for k, v in results.items() if k.startswith("cpu_us_per_attempt_at_") and isinstance(v, dict)}
    for key, parts in paced.items():
        lines += ["", f"| CPU µs per attempt, by part, paced (`{key}`) | µs |", "|---|---:|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in sorted(parts.items())]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    rates = {k.removesuffix("_per_s"): v for k, v in results.items() if k.endswith("_per_s")}
    left.barh(list(rates), list(rates.values()), color="#3a6fd8")
    left.set_xlabel("messages per second (same broker, same run)")
    left.set_title("Throughput")
    suffix = f"_ms_at_{results.get('offered_rate_per_s_for_latency', 1000):.0f}"
    lat = {
        k.removesuffix(suffix): results[k]
        for k in (f"{flow}_{p}{suffix}" for flow in ("lookup", "response") for p in ("p50", "p95", "p99"))
        if k in results
    }
    right.bar(list(lat), list(lat.values()), color="#d8a300")
    right.axhline(50, color="#b3261e", linestyle="--", label="p99 target 50 ms")
    right.set_ylabel("ms")
    right.set_title(f"Steady-state latency at {results.get('offered_rate_per_s_for_latency', 1000):,.0f} per second")
    right.tick_params(axis="x", rotation=30)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], folder: Path, stamp: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stamp}.json", folder / f"{stamp}.md", folder / f"{stamp}.png"]
    paths[0].write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    paths[1].write_text(markdown(results))
    plot(results, paths[2])
    return paths
