"""The provider-facing REST contract (Electrum PPU service interface v3, meter lookup), as strict pydantic models.

`POST {base}/prepaidutility/v3/meterLookups/{lookupId}`, HTTP Basic auth, JSON. 201: the provider supports the
meter. 400 with an ErrorDetail: UNKNOWN_METER_ID and similar final declines mean not supported; FORMAT_ERROR and
DUPLICATE_RECORD are the sender's fault. 5xx, 504 or no answer: the outcome is unknown.

Every constraint is the one Electrum's bean-validation annotations put on `io.electrum.vas.model` (repository
electrumpayments/service-interface-base) and `io.electrum.prepaidutility.model` (prepaidutility-service-interface):
`@Pattern` is a whole-string match, `@Length(max=N)` a length bound, `@NotNull` a required field. The same
constraints are written independently as JSON Schema in `providers/electrum/meter-lookup.schema.json`, which the
simulator's strict mode validates with; tests hold the two against each other.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

PATH = "/prepaidutility/v3/meterLookups/{lookup_id}"
NOT_SUPPORTED = {"UNKNOWN_METER_ID", "UTILITY_INVALID"}  # final declines about the meter
OUR_FAULT = {"FORMAT_ERROR", "DUPLICATE_RECORD"}
NAME_MAX = 40  # Institution.name

InstitutionNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,11}$")]
Digit1 = Annotated[str, StringConstraints(pattern=r"^[0-9]$")]
Digits2 = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}$")]
Digits3 = Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")]
Digits4 = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
Digits6 = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
ErrorType = Literal[
    "DUPLICATE_RECORD",
    "FORMAT_ERROR",
    "FUNCTION_NOT_SUPPORTED",
    "GENERAL_ERROR",
    "INVALID_AMOUNT",
    "ROUTING_ERROR",
    "TRANSACTION_NOT_SUPPORTED",
    "UNABLE_TO_LOCATE_RECORD",
    "UPSTREAM_UNAVAILABLE",
    "UNKNOWN_METER_ID",
    "TRANSACTION_DECLINED",
    "INVALID_MERCHANT",
    "INVALID_AN32_TOKEN",
    "DO_NOT_HONOR",
    "INVALID_MSISDN",
    "INVALID_LOYALTY_CARD",
    "UTILITY_INVALID",
    "SYSTEM_MALFUNCTION",
    "METER_KEY_INVALID",
    "AMOUNT_TOO_LOW",
    "AMOUNT_TOO_HIGH",
    "NO_FREE_UNITS_DUE",
]


class Wire(BaseModel):
    # Unknown fields are ignored (the interface grows by optional fields); no coercion between JSON types.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True, strict=True)


class Institution(Wire):
    id: InstitutionNumber
    name: str = Field(max_length=NAME_MAX)


class MerchantName(Wire):
    name: str = Field(max_length=23)
    city: str = Field(max_length=13)
    region: str = Field(max_length=2)
    country: str = Field(max_length=2)


class Merchant(Wire):
    merchant_type: Digits4
    merchant_id: str = Field(min_length=15, max_length=15)
    merchant_name: MerchantName


class Originator(Wire):
    institution: Institution
    terminal_id: str = Field(min_length=8, max_length=8)
    merchant: Merchant
    operator_id: str | None = Field(default=None, max_length=30)
    channel_id: str | None = Field(default=None, max_length=50)


class ThirdPartyIdentifier(Wire):
    institution_id: InstitutionNumber
    transaction_identifier: str


class Meter(Wire):
    meter_id: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{0,20}$")]
    service_type: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{0,12}$")] | None = None
    supply_group_code: Digits6 | None = None
    key_revision_num: Digit1 | None = None
    tariff_index: Digits2 | None = None
    token_tech_code: Digits2 | None = None
    algorithm_code: Digits2 | None = None
    new_supply_group_code: Digits6 | None = None
    new_key_revision_number: Digit1 | None = None
    new_tariff_index: Digits2 | None = None
    track2_data: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9=]{34}$")] | None = None


class MeterLookupRequest(Wire):
    id: uuid.UUID
    time: AwareDatetime
    originator: Originator
    client: Institution
    settlement_entity: Institution | None = None  # the provider
    receiver: Institution | None = None  # the utility
    third_party_identifiers: list[ThirdPartyIdentifier]
    meter: Meter


class Customer(Wire):
    first_name: str | None = Field(default=None, max_length=40)
    last_name: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=80)


class Utility(Wire):
    name: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=80)
    vat_reg_num: str | None = Field(default=None, max_length=10)
    client_id: str | None = Field(default=None, max_length=20)
    message: str | None = Field(default=None, max_length=80)


class LedgerAmount(Wire):
    amount: int = Field(ge=-(2**63), le=2**63 - 1)  # a Java Long
    currency: Digits3
    ledger_indicator: Literal["DEBIT", "CREDIT"] | None = None


class MeterLookupResponse(MeterLookupRequest):
    customer: Customer
    utility: Utility
    min_amount: LedgerAmount | None = None
    max_amount: LedgerAmount | None = None
    arrears_amount: LedgerAmount | None = None
    bsst_due: bool | None = None


class DetailItem(BaseModel):
    """One entry of a FORMAT_ERROR's `detailMessage` list, as Electrum's validation reports it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)
    message_property: str | None = None
    field: str | None = None
    error: str | None = None
    invalid_value: Any = None


class ErrorDetail(Wire):
    """What a conforming provider answers with a 4xx/5xx (the simulator builds these)."""

    error_type: ErrorType
    error_message: str = Field(max_length=20)
    request_type: Literal["METER_LOOKUP_REQUEST"] = "METER_LOOKUP_REQUEST"
    id: str
    original_id: str | None = None
    detail_message: str | list[DetailItem] | dict[str, Any] | None = None


class ErrorDetailSeen(BaseModel):
    """How the bridge reads an ErrorDetail: leniently, so that a provider that bends the interface still tells us
    its error type and whatever detail it sent (any JSON shape), which then reaches the dead letter whole."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)
    error_type: str
    error_message: str | None = None
    request_type: str | None = None
    id: str | None = None
    original_id: str | None = None
    detail_message: Any = None


def fit_name(name: str, limit: int = NAME_MAX) -> str:
    """Names on the wire are cut here, and only here, to the interface's limit (40 for an institution, 23 for a
    merchant), marked with an ellipsis so that a reader sees it was cut."""
    return name if len(name) <= limit else name[: limit - 1] + "…"
