"""Operator commands (from the console or the CLI) and their results."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import Field

from schemas.envelope import Data, Envelope, InstitutionId, MeterNumber


class ConfirmSupportRequestedData(Data):
    meter_number: MeterNumber
    operator: str = Field(min_length=1, max_length=100, description="user name of the operator")
    institution_id: InstitutionId
    proof: str | None = Field(
        default=None,
        max_length=200,
        description="HMAC-SHA256 (itsdangerous signature) over command id, meter, operator and institution, keyed by "
        "the deployment's command signing key; a command without a valid proof is rejected",
    )


class ConfirmSupportRequested(Envelope[ConfirmSupportRequestedData]):
    """The command id is the envelope id: a command sent twice is applied once."""

    TYPE: ClassVar[str] = "ppu.command.confirm_support"


class CommandResultData(Data):
    command_id: uuid.UUID
    meter_number: MeterNumber
    outcome: Literal["marked", "already_marked", "rejected"]
    reason: str | None = Field(default=None, max_length=200)


class CommandResult(Envelope[CommandResultData]):
    TYPE: ClassVar[str] = "ppu.command.result"
