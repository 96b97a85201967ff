"""Meter-lookup requests (one topic per provider), provider responses, and expired rounds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import Data, Envelope, InstitutionId, MeterNumber, ProviderId
from schemas.purchase import Money

LookupReason = Literal["first_seen", "rebroadcast", "routine"]


class LookupRequestedData(Data):
    lookup_id: uuid.UUID
    round_id: uuid.UUID
    meter_number: MeterNumber
    provider_id: ProviderId
    reason: LookupReason
    institution_id: InstitutionId | None = None
    utility_name: str | None = Field(default=None, max_length=100)
    deadline: AwareDatetime


class LookupRequested(Envelope[LookupRequestedData]):
    TYPE: ClassVar[str] = "ppu.lookup.requested"


class UtilityInfo(Data):
    name: str = Field(min_length=1, max_length=100)
    client_id: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)
    message: str | None = Field(default=None, max_length=300)


class CustomerInfo(Data):
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=300)


class LookupRespondedData(Data):
    lookup_id: uuid.UUID
    provider_id: ProviderId
    meter_number: MeterNumber
    status: Literal["supported", "not_supported"]
    responded_at: AwareDatetime
    utility: UtilityInfo | None = None
    customer: CustomerInfo | None = None
    min_amount: Money | None = None
    max_amount: Money | None = None


class LookupResponded(Envelope[LookupRespondedData]):
    TYPE: ClassVar[str] = "ppu.lookup.responded"


class RoundExpiredData(Data):
    round_id: uuid.UUID
    meter_number: MeterNumber
    reason: LookupReason
    providers_asked: list[ProviderId]
    unanswered: list[ProviderId]
    opened_at: datetime


class RoundExpired(Envelope[RoundExpiredData]):
    TYPE: ClassVar[str] = "ppu.lookup.round_expired"
