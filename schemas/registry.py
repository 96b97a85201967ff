"""Every message model by name (as topics.yaml names them) and by CloudEvents type."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.commands import CommandResult, ConfirmSupportRequested
from schemas.dead_letter import DeadLetterHeaders
from schemas.envelope import Envelope
from schemas.lookup import LookupRequested, LookupResponded, RoundExpired
from schemas.meter_events import MarkedForRebroadcast, MeterBlocked, MeterUnblocked, SupportChanged
from schemas.purchase import PurchaseAttempted, PurchaseBlocked, PurchaseRouted

EVENTS: dict[str, type[Envelope[Any]]] = {
    m.__name__: m
    for m in (
        PurchaseAttempted,
        PurchaseRouted,
        PurchaseBlocked,
        LookupRequested,
        LookupResponded,
        RoundExpired,
        SupportChanged,
        MeterBlocked,
        MeterUnblocked,
        MarkedForRebroadcast,
        ConfirmSupportRequested,
        CommandResult,
    )
}
MODELS: dict[str, type[BaseModel]] = {**EVENTS, "DeadLetterHeaders": DeadLetterHeaders}
BY_TYPE: dict[str, type[Envelope[Any]]] = {m.TYPE: m for m in EVENTS.values()}
