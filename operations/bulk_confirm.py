"""Bulk Confirm support (console page, API and `ppu send confirm-support-bulk`): a bounded list of meter numbers,
each sent as the same signed command the single button sends, judged by the same command consumer, audited the
same way, and answered per meter: marked, already marked, unknown, refused (with the reason), invalid, or pending
(no result within the wait).
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from db.audit import AuditRow, write_audit
from domain.command_proof import sign
from kernel.dbconn import Db
from kernel.topics import topic
from operations.command_results import CommandResults
from schemas.commands import ConfirmSupportRequested, ConfirmSupportRequestedData
from schemas.envelope import CONTENT_TYPE

MAX_METERS = 500  # one upload; a larger re-check is several uploads, so no request holds the console for long
METER = re.compile(r"[A-Za-z0-9]{1,20}")
OUTCOMES = ("marked", "already marked", "unknown", "refused", "invalid", "pending")


class Sender(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> Any: ...


@dataclass(frozen=True)
class MeterResult:
    meter_number: str
    outcome: str  # one of OUTCOMES
    reason: str | None = None


class TooMany(ValueError):
    pass


def parse_meters(text: str) -> list[str]:
    """Pasted numbers (one per line, or separated by commas, semicolons or spaces) or a CSV whose first column holds
    them; blank cells skipped, repeats dropped, order kept. More than MAX_METERS raises TooMany."""
    seen: dict[str, None] = {}
    for row in csv.reader(io.StringIO(text)):
        cells = row[:1] if len(row) > 1 else re.split(r"[\s;,]+", row[0]) if row else []
        for cell in cells:
            if cell.strip():
                seen.setdefault(cell.strip(), None)
    if len(seen) > MAX_METERS:
        raise TooMany(f"{len(seen)} meter numbers: at most {MAX_METERS} at a time")
    return list(seen)


async def confirm_many(
    conn: Db,
    producer: Sender,
    results: CommandResults,
    *,
    meters: list[str],
    operator: str,
    institution_id: str,
    signing_key: str,
    topic_prefix: str,
    via: str,
    wait_seconds: float,
) -> list[MeterResult]:
    """Sends one signed command per known meter and waits (bounded) for their results. `results` must be started."""
    valid = [m for m in meters if METER.fullmatch(m)]
    known = {
        r["meter_number"]
        for r in await conn.fetch("SELECT meter_number FROM meters WHERE meter_number = ANY($1)", valid)
    }
    commands = {
        m: sign(
            ConfirmSupportRequested.new(
                ConfirmSupportRequestedData(meter_number=m, operator=operator, institution_id=institution_id),
                source=f"ppu/{via}",
                correlationid=str(uuid.uuid4()),
            ),
            signing_key,
        )
        for m in valid
        if m in known
    }
    waiting = {m: results.expect(c.id) for m, c in commands.items()}
    name = topic("operator_commands").name(topic_prefix)
    sent = [
        await producer.send(name, value=c.encode(), key=m.encode(), headers=[("content-type", CONTENT_TYPE)])
        for m, c in commands.items()
    ]
    await asyncio.gather(*sent)  # every command acknowledged by the broker before it is audited as sent
    await write_audit(
        conn,
        [
            AuditRow(
                operator, institution_id, "confirm_support_requested", m, "sent", {"command_id": str(c.id), "via": via}
            )
            for m, c in commands.items()
        ],
    )
    out, deadline = [], asyncio.get_running_loop().time() + wait_seconds  # one wait for the whole list
    for m in meters:
        if not METER.fullmatch(m):
            out.append(MeterResult(m[:40], "invalid", "not a meter number (1-20 letters and digits)"))
        elif m not in known:
            out.append(MeterResult(m, "unknown"))
        else:
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            result = await results.wait(waiting[m], commands[m].id, left)
            if result is None:
                out.append(MeterResult(m, "pending", "no result yet: see the meter page"))
            elif result.outcome == "rejected":
                out.append(MeterResult(m, "refused", result.reason))
            else:
                out.append(MeterResult(m, result.outcome.replace("_", " ")))
    counts = {o: sum(r.outcome == o for r in out) for o in OUTCOMES}
    await write_audit(
        conn, [AuditRow(operator, institution_id, "bulk_confirm_support", None, "ok", {**counts, "via": via})]
    )
    return out
