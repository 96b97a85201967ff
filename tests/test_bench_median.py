"""The README's benchmark table is the median of each figure over the runs, judged against its target."""

from __future__ import annotations

from bench.median import medians, table


def test_median_of_each_figure_and_its_verdict() -> None:
    runs = [
        {"lookup_p99_ms_at_1000": 70.0, "cpu_us_per_attempt": 300.0, "relay_floor_per_s": 10.0, "commit": "a"},
        {"lookup_p99_ms_at_1000": 40.0, "cpu_us_per_attempt": 90.0, "relay_floor_per_s": 30.0, "commit": "a"},
        {"lookup_p99_ms_at_1000": 45.0, "cpu_us_per_attempt": 95.0, "relay_floor_per_s": 20.0, "commit": "a"},
    ]
    assert medians(runs) == {"lookup_p99_ms_at_1000": 45.0, "cpu_us_per_attempt": 95.0, "relay_floor_per_s": 20.0}
    text = table(runs)
    assert "| `lookup_p99_ms_at_1000` | 45.000 | 70, 40, 45 | met (< 50) |" in text
    assert "| `cpu_us_per_attempt` | 95.000 | 300, 90, 95 | met (<= 100) |" in text
    assert "| `relay_floor_per_s` | 20 |" in text


def test_a_figure_missing_from_a_run_is_left_out() -> None:
    runs = [{"lookup_p99_ms_at_1000": 70.0}, {}]
    assert medians(runs) == {}
