"""Dead-letter records: the original bytes as the value, and these headers naming where and why."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DeadLetterHeaders(BaseModel):
    """Header names are the field names prefixed `dlq_`; values are UTF-8 strings."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp: int = Field(description="ms since the epoch, the original record's timestamp")
    consumer_group: str
    stage: str = Field(description="decode, validate or apply")
    error_class: str
    error_message: str = Field(max_length=1000)
    truncated: bool | None = Field(default=None, description="true: the value is the start of the original only")
    value_length: int | None = Field(default=None, description="a truncated value's original length in bytes")
    value_sha256: str | None = Field(default=None, description="a truncated value's original SHA-256 (hex)")
    provider_error: str | None = Field(
        default=None, max_length=16000, description="the HTTP bridge: the provider's ErrorDetail, as it sent it"
    )

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [(f"dlq_{k}", str(v).encode()) for k, v in self.model_dump().items() if v is not None]

    @classmethod
    def from_headers(cls, headers: list[tuple[str, bytes]]) -> DeadLetterHeaders:
        return cls.model_validate({k[4:]: v.decode() for k, v in headers if k.startswith("dlq_")})
