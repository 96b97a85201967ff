"""`python -m bench.median RESULT.json …`: the median of each figure over several `make bench` runs, as the README's
table (the targets are judged on medians, the p99 targets in every run; each run's own file stays committed beside
it)."""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from bench.report import TARGETS, meets, verdict

# Issue #17 asks for these under their target in each run, not as a median.
EACH_RUN = frozenset({"lookup_p99_ms_at_1000", "response_p99_ms_at_1000"})


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in TARGETS if all(isinstance(r.get(k), int | float) for r in runs)]
    # Each turn's rate (bench/in_turn.py) stays in its own file: the medians of the variants stand for them.
    keys += sorted(k for k in runs[0] if k.endswith("_per_s") and "_turn" not in k and all(k in r for r in runs))
    return {k: statistics.median(float(r[k]) for r in runs) for k in keys}


def table(runs: list[dict[str, Any]]) -> str:
    m = medians(runs)
    lines = ["| figure | median | each run | target |", "|---|---:|---|---|"]
    for k in TARGETS:
        if k in m:
            values = [float(r[k]) for r in runs]
            each = ", ".join(f"{v:,.3g}" for v in values)
            lines.append(f"| `{k}` | {m[k]:,.3f} | {each} | {_judged(k, m[k], values)} |")
    lines += ["", "| raw rate | median per second |", "|---|---:|"]
    lines += [f"| `{k}` | {v:,.0f} |" for k, v in m.items() if k.endswith("_per_s")]
    return "\n".join(lines) + "\n"


def _judged(key: str, median: float, values: list[float]) -> str:
    if key not in EACH_RUN:
        return verdict(key, median)
    op, target = TARGETS[key]
    rule = f"({op} {target:g} in each run)"
    over = sum(1 for v in values if math.isfinite(v) and not meets(key, v))  # as `verdict` judges each run
    return f"met {rule}" if not over else f"missed {rule}: {over} of {len(values)} over"


def read_runs(paths: list[str]) -> list[dict[str, Any]]:
    """Each results file as a dict; a file that is missing or not a results file is one readable line."""
    runs = []
    for p in paths:
        try:
            run = json.loads(Path(p).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{p}: cannot read a results file ({e})") from e
        if not isinstance(run, dict):
            raise ValueError(f"{p}: not a `make bench` results file (no figures in it)")
        runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.median", description=__doc__)
    parser.add_argument("results", nargs="+", metavar="RESULT.json", help="bench/results/<stamp>.json of each run")
    paths = parser.parse_args(argv).results
    try:
        runs = read_runs(paths)
    except ValueError as e:
        parser.error(str(e))
    print(
        f"Medians of {len(runs)} runs: "
        + ", ".join(f"`{Path(p).stem}` ({r.get('commit')})" for p, r in zip(paths, runs, strict=True))
    )
    print()
    print(table(runs), end="")


if __name__ == "__main__":
    main()
