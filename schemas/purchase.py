"""Purchase attempts (from the upstream purchase service) and the routing decision that ends each one."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from schemas.envelope import Data, Envelope, InstitutionId, MeterNumber, ProviderId


class Money(Data):
    amount: int = Field(ge=0, description="minor units")
    currency: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")] = Field(description="ISO 4217 numeric")


class PurchaseAttemptedData(Data):
    attempt_id: uuid.UUID
    meter_number: MeterNumber
    institution_id: InstitutionId
    amount: Money | None = None


class PurchaseAttempted(Envelope[PurchaseAttemptedData]):
    TYPE: ClassVar[str] = "ppu.purchase.attempted"


class SkippedProvider(Data):
    provider_id: ProviderId
    reason: str = Field(max_length=200)


class PurchaseRoutedData(Data):
    attempt_id: uuid.UUID
    meter_number: MeterNumber
    provider_id: ProviderId
    reason: str = Field(max_length=200)
    skipped: list[SkippedProvider] = Field(default_factory=list)


class PurchaseRouted(Envelope[PurchaseRoutedData]):
    TYPE: ClassVar[str] = "ppu.purchase.routed"


class PurchaseBlockedData(Data):
    attempt_id: uuid.UUID
    meter_number: MeterNumber
    reason: str = Field(max_length=200)
    skipped: list[SkippedProvider] = Field(default_factory=list)


class PurchaseBlocked(Envelope[PurchaseBlockedData]):
    TYPE: ClassVar[str] = "ppu.purchase.blocked"
