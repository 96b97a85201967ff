"""Hostile records a scenario sends on every consumed topic while the load flows: records as large as the broker
takes, and every class of value the exported JSON Schemas refuse. Each must end on its dead-letter topic exactly
once (known by its SHA-256), and nothing else may stop."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.env import INSTITUTION
from faults.scenarios import OPERATOR, Inject, Run
from kernel.topics import topic
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import Envelope
from schemas.lookup import LookupRequested, LookupRequestedData, LookupResponded, LookupRespondedData
from schemas.purchase import PurchaseAttempted, PurchaseAttemptedData

NEAR_LIMIT, OVER_LIMIT = 1_000_000, 1_048_400  # bytes: under the broker's 1 MiB, and as much as it takes


def _valid(topic_key: str, meter: str, provider: str) -> Envelope[Any]:
    """A valid message of the topic, the one each hostile variant is made from."""
    now = datetime.now(UTC)
    if topic_key == "purchase_attempts":
        data = PurchaseAttemptedData(attempt_id=uuid.uuid4(), meter_number=meter, institution_id=INSTITUTION)
        return PurchaseAttempted.new(data, source="faults", correlationid="hostile")
    if topic_key == "lookup_responses":
        answer = LookupRespondedData(
            lookup_id=uuid.uuid4(), provider_id=provider, meter_number=meter, status="supported", responded_at=now
        )
        return LookupResponded.new(answer, source="faults", correlationid="hostile")
    if topic_key == "operator_commands":
        command = ConfirmSupportRequestedData(meter_number=meter, operator=OPERATOR, institution_id=INSTITUTION)
        return ConfirmSupportRequested.new(command, source="faults", correlationid="hostile")
    request = LookupRequestedData(
        lookup_id=uuid.uuid4(),
        round_id=uuid.uuid4(),
        meter_number=meter,
        provider_id=provider,
        reason="first_seen",
        deadline=now + timedelta(seconds=30),
    )
    return LookupRequested.new(request, source="faults", correlationid="hostile")


# (where, value): every class of value the schemas refuse, on the envelope and in the data.
REFUSED: list[tuple[tuple[str, ...], Any]] = [
    (("time",), 17),
    (("time",), "yesterday"),
    (("schemaversion",), True),
    (("schemaversion",), 2),
    (("specversion",), "2.0"),
    (("id",), None),
    (("id",), "not-a-uuid"),
    (("subject",), "not a meter!"),
    (("correlationid",), ""),
    (("data",), []),
    (("data", "meter_number"), 401000001),
]
DATA_REFUSED: dict[str, list[tuple[str, Any]]] = {
    "purchase_attempts": [("amount", {"amount": "10000", "currency": "710"}), ("attempt_id", 7)],
    "lookup_responses": [("status", "maybe"), ("responded_at", 17), ("lookup_id", "x")],
    "operator_commands": [("operator", 5), ("proof", 7), ("institution_id", "no spaces allowed")],
    "lookup_requests": [("deadline", "soon"), ("reason", "because"), ("round_id", None)],
}


def _refused_variants(topic_key: str, meter: str, provider: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs; each value unique (its correlation id), so each is counted once."""
    out: list[tuple[bytes, bytes]] = []
    changes = [*REFUSED, *((("data", field), value) for field, value in DATA_REFUSED[topic_key])]
    for path, value in changes:
        obj = json.loads(_valid(topic_key, meter, provider).encode())
        obj["correlationid"] = f"hostile-{uuid.uuid4().hex[:12]}" if path != ("correlationid",) else ""
        if path == ("correlationid",):
            obj["causationid"] = uuid.uuid4().hex  # unique all the same
        node = obj
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
        out.append((meter.encode(), json.dumps(obj).encode()))
    wrong_key = _valid(topic_key, meter, provider)  # valid, but keyed by something other than its meter number
    out.append((b"not-the-meter", wrong_key.encode()))
    out.append((None or b"", _valid(topic_key, meter, provider).encode()))  # an empty key
    return out


def _topics(run: Run, provider: str) -> dict[str, str]:
    prefix = run.env.settings.topic_prefix
    return {
        "purchase_attempts": topic("purchase_attempts").name(prefix),
        "lookup_responses": topic("lookup_responses").name(prefix),
        "operator_commands": topic("operator_commands").name(prefix),
        "lookup_requests": topic("lookup_requests").name(prefix, provider_id=provider),  # the bridge reads it
    }


def hostile_records(at: int, provider: str, storm: bool = False) -> Inject:
    """At attempt `at`: on every consumed topic a near-limit and an over-limit record (random bytes), or with
    `storm` every class of value the schemas refuse."""

    async def inject(run: Run, i: int) -> None:
        if i != at:
            return
        big = AIOKafkaProducer(bootstrap_servers=run.env.bootstrap, max_request_size=2_000_000, acks="all")
        await big.start()
        try:
            for n, (key, name) in enumerate(_topics(run, provider).items()):
                meter = f"07{(at + n) % 400:08d}"
                records = (
                    _refused_variants(key, meter, provider)
                    if storm
                    else [(meter.encode(), os.urandom(NEAR_LIMIT)), (meter.encode(), os.urandom(OVER_LIMIT))]
                )
                for record_key, value in records:
                    run.poison.add(value)
                    await big.send_and_wait(name, value=value, key=record_key or None)
        finally:
            await big.stop()
        run.fault_over()

    return inject
