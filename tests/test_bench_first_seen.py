"""The first-seen benchmark's parts: its simulated providers answer from a process of their own, and its figures
keep the cold start apart from the steady state."""

from __future__ import annotations

import asyncio
import multiprocessing
import re

from aiokafka import AIOKafkaConsumer

from bench.latency import WARM_UP_S, latency_figures, slow_windows, stage_figures
from bench.simulated_providers import providers_apart
from kernel.connections import started_producer
from kernel.settings import Settings
from kernel.topics import topic
from providers.kafka_simulator import Coverage
from schemas.lookup import LookupResponded
from tests.bridging import lookup


def test_the_first_second_is_reported_apart_and_the_steady_state_after_the_warm_up() -> None:
    sent = {f"a{i}": 1000.0 + i * 0.1 for i in range(100)}  # 10 s at 10 per second
    received = {c: t + (0.9 if t < 1001.0 else 0.02) for c, t in sent.items()}  # a slow first second
    del received["a99"]
    figures = latency_figures(sent, received)
    assert 890 < figures["cold_p99"] < 910
    assert 19 < figures["p99"] < 21  # nothing of the first second, nor of the warm-up, in the steady state
    assert figures["lost"] == 1
    assert WARM_UP_S >= 1


def test_a_stalled_second_shows_as_the_worst_seconds_p99_not_in_the_median_seconds() -> None:
    sent = {f"a{i}": 1000.0 + i * 0.01 for i in range(1000)}  # 10 s at 100 per second
    received = {c: t + (0.2 if 1006.0 <= t < 1007.0 else 0.01) for c, t in sent.items()}  # second 6 stalls
    figures = latency_figures(sent, received)
    assert 199 < figures["p99_worst_s"] < 201
    assert 9 < figures["p99_median_s"] < 11
    assert figures["p99"] > 190  # a tenth of the steady state slow: the whole run's p99 is the stall's


def test_the_slowest_windows_name_when_a_stall_began_and_the_stage_it_sat_in() -> None:
    start = 1_796_700_000.0  # 2026-12-08T03:20:00Z
    sent = {f"a{i}": start + i * 0.01 for i in range(1000)}  # 10 s at 100 per second
    # 100 ms from 6.3 s on wait 150 ms in the lookup worker; 100 ms from 1 s (the warm-up) wait longer, unreported.
    worker = {c: 0.15 if 6.3 <= t - start < 6.4 else 0.5 if 1.0 <= t - start < 1.1 else 0.005 for c, t in sent.items()}
    stamped = {c: (t + worker[c], t + worker[c] + 0.003) for c, t in sent.items()}
    received = {c: made + 0.002 for c, (_, made) in stamped.items()}
    windows = slow_windows(sent, stamped, received, count=3)
    assert len(windows) == 3
    assert [w["at"] for w in windows] == sorted(w["at"] for w in windows)
    stall = max(windows, key=lambda w: w["ms"])
    assert stall["at"] == "2026-12-08T03:20:06.300+00:00"
    assert stall["worker_ms"] == 150.0 and stall["relay_ms"] == 3.0 and stall["broker_ms"] == 2.0
    assert stall["ms"] == 155.0
    assert all(w["ms"] < 11 for w in windows if w is not stall)


def test_the_latency_stages_add_up_and_leave_the_warm_up_out() -> None:
    sent = {f"a{i}": 1000.0 + i * 0.1 for i in range(100)}
    # Worker 30 ms, relay 10 ms, broker 5 ms in the steady state; the warm-up 1 s in the worker.
    stamped = {c: (t + (1.0 if t - 1000.0 < WARM_UP_S else 0.03), 0.0) for c, t in sent.items()}
    stamped = {c: (made, made + 0.01) for c, (made, _) in stamped.items()}
    received = {c: produced + 0.005 for c, (_, produced) in stamped.items()}
    del received["a99"]  # not read: left out of every stage
    figures = stage_figures(sent, stamped, received)
    assert 29 < figures["stage_worker_p99"] < 31
    assert 9 < figures["stage_relay_p50"] < 11
    assert 4 < figures["stage_broker_p99"] < 6
    assert 999 < figures["cold_stage_worker_p99"] < 1001  # the first second's cold start, where it went
    assert 9 < figures["cold_stage_relay_p99"] < 11
    stages = ("worker", "relay", "broker")
    assert set(figures) == {f"stage_{s}_{p}" for s in stages for p in ("p50", "p99")} | {
        f"cold_stage_{s}_p99" for s in stages
    }


async def test_the_simulated_providers_answer_from_their_own_process(settings: Settings, topics: list[str]) -> None:
    assert settings.kafka_bootstrap_servers is not None
    bootstrap, prefix = settings.kafka_bootstrap_servers, settings.topic_prefix
    coverages = {"p1": Coverage(re.compile(r"07\d+")), "p2": Coverage(re.compile(r"\d+"), silent=True)}
    answers = AIOKafkaConsumer(
        topic("lookup_responses").name(prefix), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await answers.start()
    try:
        with providers_apart(bootstrap, prefix, coverages):
            async with started_producer(bootstrap) as producer:
                # Asked again until answered: a simulator reads from the end of its topic once it has joined.
                for _ in range(60):
                    for provider in coverages:
                        request = lookup("0712345678", 60, provider=provider)
                        name = topic("lookup_requests").name(prefix, provider_id=provider)
                        await producer.send_and_wait(name, request.encode(), key=b"0712345678")
                    got = await answers.getmany(timeout_ms=500)
                    replies = [LookupResponded.model_validate_json(r.value or b"") for rs in got.values() for r in rs]
                    if replies:
                        break
        assert replies, "no answer within 30 s"
        assert {(r.data.provider_id, r.data.status) for r in replies} == {("p1", "supported")}  # p2 stays silent
    finally:
        await answers.stop()


async def test_the_providers_process_is_gone_when_the_block_ends(settings: Settings, topics: list[str]) -> None:
    assert settings.kafka_bootstrap_servers is not None
    before = set(multiprocessing.active_children())
    silent = {"p1": Coverage(re.compile(r"\d+"), silent=True)}
    with providers_apart(settings.kafka_bootstrap_servers, settings.topic_prefix, silent):
        assert len(set(multiprocessing.active_children()) - before) == 1
        await asyncio.sleep(0)
    assert set(multiprocessing.active_children()) - before == set()
