"""What happened to a meter: support changes, blocking, unblocking, marking for rebroadcast."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import Data, Envelope, InstitutionId, MeterNumber, ProviderId

SupportStatus = Literal["supported", "not_supported", "unconfirmed"]


class SupportChangedData(Data):
    meter_number: MeterNumber
    provider_id: ProviderId
    previous_status: SupportStatus
    status: SupportStatus
    last_response_at: AwareDatetime | None = None


class SupportChanged(Envelope[SupportChangedData]):
    TYPE: ClassVar[str] = "ppu.meter.support_changed"


class MeterBlockedData(Data):
    meter_number: MeterNumber
    reason: str = Field(max_length=200)
    attempt_id: uuid.UUID | None = None


class MeterBlocked(Envelope[MeterBlockedData]):
    TYPE: ClassVar[str] = "ppu.meter.blocked"


class MeterUnblockedData(Data):
    meter_number: MeterNumber
    provider_id: ProviderId


class MeterUnblocked(Envelope[MeterUnblockedData]):
    TYPE: ClassVar[str] = "ppu.meter.unblocked"


class MarkedForRebroadcastData(Data):
    meter_number: MeterNumber
    marked_by: str = Field(min_length=1, max_length=100)
    institution_id: InstitutionId
    marked_at: AwareDatetime


class MarkedForRebroadcast(Envelope[MarkedForRebroadcastData]):
    TYPE: ClassVar[str] = "ppu.meter.marked_for_rebroadcast"
