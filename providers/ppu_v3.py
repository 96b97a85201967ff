"""The provider-facing REST contract (Electrum PPU service interface v3, meter lookup), as pydantic models.

`POST {base}/prepaidutility/v3/meterLookups/{lookupId}`, HTTP Basic auth, JSON. 201: the provider supports the
meter. 400 with an ErrorDetail: UNKNOWN_METER_ID and similar final declines mean not supported; FORMAT_ERROR and
DUPLICATE_RECORD are the sender's fault. 5xx, 504 or no answer: the outcome is unknown.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

PATH = "/prepaidutility/v3/meterLookups/{lookup_id}"
NOT_SUPPORTED = {"UNKNOWN_METER_ID", "UTILITY_INVALID", "METER_BLOCKED", "UNSUPPORTED_METER"}
OUR_FAULT = {"FORMAT_ERROR", "DUPLICATE_RECORD"}


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Party(Wire):
    id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)


class MerchantName(Wire):
    name: str = Field(min_length=1, max_length=23)
    city: str = Field(min_length=1, max_length=13)
    region: str = Field(min_length=2, max_length=2)
    country: str = Field(min_length=2, max_length=2)


class Merchant(Wire):
    merchant_type: Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
    merchant_id: str = Field(min_length=15, max_length=15)
    merchant_name: MerchantName


class Originator(Wire):
    institution: Party
    terminal_id: str = Field(min_length=8, max_length=8)
    merchant: Merchant


class ThirdPartyIdentifier(Wire):
    institution_id: str = Field(min_length=1, max_length=40)
    transaction_identifier: str = Field(min_length=1, max_length=100)


class Meter(Wire):
    meter_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,20}$")]
    supply_group_code: str | None = None
    key_revision_num: int | None = None
    tariff_index: str | None = None
    token_tech_code: str | None = None
    algorithm_code: str | None = None
    service_type: str | None = None
    track2_data: str | None = None


class MeterLookupRequest(Wire):
    id: uuid.UUID
    time: AwareDatetime
    originator: Originator
    client: Party
    settlement_entity: Party  # the provider
    receiver: Party  # the utility
    third_party_identifiers: list[ThirdPartyIdentifier] = Field(min_length=1)
    meter: Meter


class Customer(Wire):
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None


class Utility(Wire):
    name: str = Field(min_length=1, max_length=100)
    address: str | None = None
    vat_reg_num: str | None = None
    client_id: str | None = None
    message: str | None = None


class Amount(Wire):
    amount: int = Field(ge=0)
    currency: Annotated[str, StringConstraints(pattern=r"^\d{3}$")]


class MeterLookupResponse(MeterLookupRequest):
    customer: Customer | None = None
    utility: Utility | None = None
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    arrears_amount: Amount | None = None
    bsst_due: bool | None = None


class ErrorDetail(Wire):
    error_type: str
    error_message: str
    request_type: str | None = None
    id: str | None = None
    original_id: str | None = None
    detail_message: str | None = None
