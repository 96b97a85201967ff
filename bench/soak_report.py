"""`ppu soak`: the command, and its results as JSON, a Markdown summary and a plot over time."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import click

RESULTS = Path(__file__).resolve().parent / "results"


class Duration(click.ParamType[float]):
    """`90s`, `30m`, `1h` or plain seconds. Four units do not need a library (pytimeparse and the like parse prose)."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "": 1}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
        if found is None or float(found[1]) <= 0:
            self.fail(f"{value!r} is not a duration such as 90s, 30m or 1h", param, ctx)
        return float(found[1]) * self.UNITS[found[2]]


def markdown(r: dict[str, Any], commit: str) -> str:
    lines = [
        f"Commit measured: `{commit}`",
        "",
        f"{r['rate_per_s']:,.0f} attempts/s for {r['duration_s'] / 60:.0f} min, every worker a process of its own, "
        f"five simulated providers answering in 5-50 ms; {r['new_meter_share']:.0%} of attempts on meters never seen.",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    for key in ("attempts_sent", "attempts_decided", "attempts_lost", "decision_copies_beyond_one"):
        lines.append(f"| `{key}` | {r[key]:,} |")
    for key in ("decision_p50_ms", "decision_p99_ms", "worst_minute_p99_ms", "drain_s"):
        lines.append(f"| `{key}` | {r[key]:.1f} |")
    first, last = (r["samples"][0], r["samples"][-1]) if r["samples"] else ({}, {})
    lines += ["", "| worker | RSS MB at start | at end |", "|---|---:|---:|"]
    lines += [f"| {w} | {first['rss_mb'][w]:.0f} | {last['rss_mb'][w]:.0f} |" for w in first.get("rss_mb", {})]
    lines += ["", "| table | MB at start | at end |", "|---|---:|---:|"]
    lines += [f"| {t} | {first['table_mb'][t]:.1f} | {last['table_mb'][t]:.1f} |" for t in first.get("table_mb", {})]
    spans = cores(r["samples"])
    if spans:
        parts = sorted({p for _, used in spans for p in used})
        lines += ["", "| part | CPU cores, mean | busiest 10 s |", "|---|---:|---:|"]
        for part in parts:
            series = [used.get(part, 0.0) for _, used in spans]
            lines.append(f"| {part} | {sum(series) / len(series):.2f} | {max(series):.2f} |")
    lines += ["", "| minute | decided | p50 ms | p99 ms |", "|---:|---:|---:|---:|"]
    lines += [f"| {m['minute']} | {m['decided']:,} | {m['p50']:.1f} | {m['p99']:.1f} |" for m in r["per_minute"]]
    return "\n".join(lines) + "\n"


def cores(samples: list[dict[str, Any]]) -> list[tuple[float, dict[str, float]]]:
    """CPU cores each part used between consecutive samples (minutes since start, part → cores)."""
    out = []
    for a, b in itertools.pairwise(s for s in samples if "cpu_s" in s):
        span = b["t"] - a["t"]
        if span > 0:
            used = {p: max(b["cpu_s"][p] - a["cpu_s"].get(p, 0.0), 0.0) / span for p in b["cpu_s"]}
            out.append(((a["t"] + b["t"]) / 120, used))
    return out


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, cpu, rss, size) = plt.subplots(4, 1, figsize=(10, 13), sharex=True)
    minutes = [m["minute"] for m in r["per_minute"]]
    for key in ("p50", "p99"):
        lat.plot(minutes, [m[key] for m in r["per_minute"]], marker=".", label=key)
    lat.set_ylabel("decision latency, ms")
    lat.set_title(f"Soak: {r['rate_per_s']:,.0f} attempts/s, {r['attempts_lost']} lost")
    lat.legend()
    spans = cores(r["samples"])
    for part in sorted({p for _, used in spans for p in used}):
        cpu.plot([m for m, _ in spans], [used.get(part, 0.0) for _, used in spans], label=part)
    cpu.set_ylabel("CPU, cores")
    cpu.legend(fontsize="small", ncol=3)
    t = [s["t"] / 60 for s in r["samples"]]
    for worker in r["samples"][0]["rss_mb"] if r["samples"] else []:
        rss.plot(t, [s["rss_mb"][worker] for s in r["samples"]], label=worker)
    rss.set_ylabel("worker RSS, MB")
    rss.legend(fontsize="small", ncol=3)
    for table in r["samples"][0]["table_mb"] if r["samples"] else []:
        size.plot(t, [s["table_mb"][table] for s in r["samples"]], label=table)
    size.set_ylabel("table size, MB")
    size.set_xlabel("minutes")
    size.legend(fontsize="small", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@click.command()
@click.option("--duration", type=Duration(), default="30m", show_default=True, help="how long to send, e.g. 90s")
@click.option("--rate", type=click.FloatRange(1, 100_000), default=1000, show_default=True, help="attempts per s")
@click.option("--new-share", type=click.FloatRange(0, 1), default=0.02, show_default=True, help="on unseen meters")
def soak(duration: float, rate: float, new_share: float) -> None:
    """Run every worker at a steady rate; report latency per minute, losses, memory and table sizes."""
    import asyncio

    from bench.env import drop_previous_runs
    from bench.soak import soak_run
    from bench.steps import measured_commit

    asyncio.run(drop_previous_runs())
    r = asyncio.run(soak_run(duration, rate, new_share))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-soak"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stamp}.json").write_text(json.dumps({"commit": measured_commit(), **r}, indent=1) + "\n")
    (RESULTS / f"{stamp}.md").write_text(markdown(r, measured_commit()))
    plot(r, RESULTS / f"{stamp}.png")
    click.echo(f"wrote {RESULTS / stamp}.{{json,md,png}}")
    click.echo(markdown(r, measured_commit()).split("| worker")[0])
