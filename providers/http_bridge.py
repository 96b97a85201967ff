"""HTTP bridge: a provider's lookup-request topic in, its PPU v3 REST call out, the answer back as an event.

201 → supported; 400 with a final decline → not supported; 400 FORMAT_ERROR / DUPLICATE_RECORD (and other
400s) → our fault, dead-lettered with the provider's error; 5xx, 504, connection failures and timeouts → no
answer, retried with jittered backoff (tenacity) until the round's deadline and never past it. DUPLICATE_RECORD
after such a try means the provider got it but its answer was lost: asked again under a fresh request id.
Calls are bounded per provider (a semaphore) and a circuit breaker stops hammering a provider that keeps failing.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from circuitbreaker import CircuitBreaker, CircuitBreakerError
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from ppu.settings import Settings
from providers import ppu_v3 as v3
from schemas.lookup import CustomerInfo, LookupRequested, LookupResponded, LookupRespondedData, UtilityInfo


@dataclass(frozen=True)
class Endpoint:
    provider_id: str
    name: str
    base_url: str
    username: str
    password: str
    timeout_seconds: float
    max_in_flight: int


@dataclass(frozen=True)
class Outcome:
    kind: str  # supported, not_supported, our_fault or no_answer
    response: v3.MeterLookupResponse | None = None
    error: v3.ErrorDetail | None = None
    detail: str = ""


class Transient(Exception):
    """No answer about the meter this time (5xx, 504, timeout, connection failure): worth retrying."""


class AnswerLost(Exception):
    """The provider has a request of ours whose answer never came back (DUPLICATE_RECORD after a try that timed
    out): ask again under a fresh request id."""


class DeadlinePassed(Exception):
    """The round's deadline passed: an answer now would not be waited for."""


def request_body(req: LookupRequested, endpoint: Endpoint, s: Settings) -> v3.MeterLookupRequest:
    d = req.data
    switch = v3.Party(id=s.switch_institution_id, name=s.switch_institution_name)
    return v3.MeterLookupRequest(
        id=d.lookup_id,
        time=datetime.now(UTC),
        originator=v3.Originator(
            institution=switch,
            terminal_id=s.switch_terminal_id,
            merchant=v3.Merchant(
                merchant_type=s.switch_merchant_type,
                merchant_id=s.switch_merchant_id,
                merchant_name=v3.MerchantName(
                    name=s.switch_institution_name[:23],
                    city=s.switch_city,
                    region=s.switch_region,
                    country=s.switch_country,
                ),
            ),
        ),
        client=v3.Party(
            id=d.institution_id or s.switch_institution_id, name=d.institution_id or s.switch_institution_name
        ),
        settlement_entity=v3.Party(id=endpoint.provider_id, name=endpoint.name),
        receiver=v3.Party(id="unassigned", name=d.utility_name or "Unassigned"),
        third_party_identifiers=[
            v3.ThirdPartyIdentifier(institution_id=s.switch_institution_id, transaction_identifier=str(d.lookup_id))
        ],
        meter=v3.Meter(meter_id=d.meter_number),
    )


class Bridge:
    def __init__(self, endpoint: Endpoint, settings: Settings, client: httpx.AsyncClient) -> None:
        self.endpoint, self.settings, self.client = endpoint, settings, client
        self.in_flight = asyncio.Semaphore(endpoint.max_in_flight)
        self.breaker = CircuitBreaker(
            failure_threshold=5, recovery_timeout=5, expected_exception=Transient, name=endpoint.provider_id
        )

    async def _post(self, body: v3.MeterLookupRequest, seconds: float) -> Outcome:
        path = v3.PATH.format(lookup_id=body.id)
        try:
            r = await self.client.post(
                path,
                content=body.model_dump_json(by_alias=True, exclude_none=True),
                headers={"content-type": "application/json"},
                timeout=seconds,
            )
        except httpx.HTTPError as e:  # connection refused, reset, timed out
            raise Transient(f"{type(e).__name__}: {e}") from None
        if r.status_code == 201:
            try:
                return Outcome("supported", response=v3.MeterLookupResponse.model_validate_json(r.content))
            except ValidationError as e:
                return Outcome("our_fault", detail=f"unreadable 201 answer: {str(e)[:300]}")
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise Transient(f"HTTP {r.status_code}")
        try:
            error = v3.ErrorDetail.model_validate_json(r.content)
        except ValidationError:
            return Outcome("our_fault", detail=f"HTTP {r.status_code} without an ErrorDetail")
        if r.status_code == 400 and error.error_type in v3.NOT_SUPPORTED:
            return Outcome("not_supported", error=error)
        return Outcome(
            "our_fault", error=error, detail=f"HTTP {r.status_code} {error.error_type}: {error.error_message}"
        )

    async def lookup(self, req: LookupRequested) -> Outcome:
        """Calls the provider until it answers, or the round's deadline leaves no time for another try."""
        body = request_body(req, self.endpoint, self.settings)
        deadline = req.data.deadline

        def remaining() -> float:
            return (deadline - datetime.now(UTC)).total_seconds()

        def out_of_time(state: RetryCallState) -> bool:
            return remaining() <= (state.upcoming_sleep or 0)

        sent_unanswered = False  # a try that may have reached the provider, whose answer we did not get

        retrying = AsyncRetrying(
            retry=retry_if_exception_type((Transient, CircuitBreakerError, AnswerLost)),
            stop=out_of_time,
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if remaining() <= 0:
                        raise DeadlinePassed
                    async with self.in_flight:
                        timeout = min(self.endpoint.timeout_seconds, remaining())
                        try:
                            outcome: Outcome = await self.breaker.call_async(self._post, body, timeout)
                        except Transient:
                            sent_unanswered = True
                            raise
                    if sent_unanswered and outcome.error is not None and outcome.error.error_type == "DUPLICATE_RECORD":
                        # Our lookup id stays in thirdPartyIdentifiers; only the provider-facing id is new.
                        body = body.model_copy(update={"id": uuid.uuid4(), "time": datetime.now(UTC)})
                        sent_unanswered = False
                        raise AnswerLost(outcome.detail)
                    return outcome
        except (Transient, CircuitBreakerError, DeadlinePassed, AnswerLost) as e:
            return Outcome("no_answer", detail=f"{type(e).__name__}: {e}")
        raise AssertionError("unreachable: tenacity returns or re-raises")


def as_event(req: LookupRequested, outcome: Outcome) -> LookupResponded:
    d, resp = req.data, outcome.response
    utility = UtilityInfo(name=resp.utility.name, client_id=resp.utility.client_id) if resp and resp.utility else None
    customer = (
        CustomerInfo(
            first_name=resp.customer.first_name, last_name=resp.customer.last_name, address=resp.customer.address
        )
        if resp and resp.customer
        else None
    )
    data = LookupRespondedData(
        lookup_id=d.lookup_id,
        provider_id=d.provider_id,
        meter_number=d.meter_number,
        status="supported" if outcome.kind == "supported" else "not_supported",
        responded_at=datetime.now(UTC),
        utility=utility,
        customer=customer,
    )
    return LookupResponded.new(
        data, source=f"ppu/provider-bridge/{d.provider_id}", correlationid=req.correlationid, causationid=str(req.id)
    )
