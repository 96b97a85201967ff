"""HTTP bridge: one lookup request in, its PPU v3 REST call out, the outcome back.

201 → supported; 400 with a final decline → not supported; 400 FORMAT_ERROR → refused (a configuration problem:
the provider's whole ErrorDetail is kept); other 4xx → our fault; 5xx, 504, connection failures and timeouts →
no answer, retried with jittered backoff (tenacity) until the round's deadline and never past it. DUPLICATE_RECORD
after such a try means the provider got it but its answer was lost: asked again under a fresh request id.
A body that the interface would refuse never leaves: it is refused here, naming the field.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import structlog
from circuitbreaker import STATE_CLOSED, CircuitBreaker, CircuitBreakerError
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from kernel import tracing
from kernel.settings import Settings
from providers import bridge_metrics as metrics
from providers import ppu_v3 as v3
from providers.directory import Directory, Party
from schemas.envelope import describe
from schemas.lookup import LookupRequested

log = structlog.get_logger()
Kind = Literal["supported", "not_supported", "refused", "our_fault", "no_answer"]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    response: v3.MeterLookupResponse | None = None
    error_type: str | None = None
    detail: str = ""
    provider_error: str | None = None  # the provider's ErrorDetail, as it sent it


class Transient(Exception):
    """No answer about the meter this time (5xx, 504, timeout, connection failure): worth retrying."""


class AnswerLost(Exception):
    """The provider has a request of ours whose answer never came back (DUPLICATE_RECORD after a try that timed
    out): ask again under a fresh request id."""


class DeadlinePassed(Exception):
    """The round's deadline passed: an answer now would not be waited for."""


class BodyRefused(Exception):
    """We cannot build a body the interface accepts (a missing Electrum id, a setting out of bounds)."""


def _wire_party(party: Party, field: str, what: str) -> dict[str, str]:
    if party.electrum_id is None:
        raise BodyRefused(f"{field}: {what} has no Electrum institution id (register it with --electrum-id)")
    return {"id": party.electrum_id, "name": v3.fit_name(party.name)}


def request_body(req: LookupRequested, directory: Directory, s: Settings) -> v3.MeterLookupRequest:
    """The body for one lookup, checked against the interface's constraints before it may leave."""
    d = req.data
    switch = Party(s.switch_institution_id, s.switch_institution_name)
    client = directory.institutions.get(d.institution_id, switch) if d.institution_id else switch
    utility = directory.utilities.get(d.utility_name or "")
    if utility is None or utility.electrum_id is None:
        utility = Party(s.default_receiver_id, s.default_receiver_name) if s.default_receiver_id else None
    body: dict[str, Any] = {
        "id": str(d.lookup_id),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "originator": {
            "institution": _wire_party(switch, "originator.institution.id", "the switch (PPU_SWITCH_INSTITUTION_ID)"),
            "terminalId": s.switch_terminal_id,
            "merchant": {
                "merchantType": s.switch_merchant_type,
                "merchantId": s.switch_merchant_id,
                "merchantName": {
                    "name": v3.fit_name(s.switch_institution_name, 23),
                    "city": s.switch_city,
                    "region": s.switch_region,
                    "country": s.switch_country,
                },
            },
        },
        "client": _wire_party(client, "client.id", f"institution {d.institution_id}"),
        "settlementEntity": _wire_party(directory.provider.party, "settlementEntity.id", f"provider {d.provider_id}"),
        "thirdPartyIdentifiers": [
            {"institutionId": switch.electrum_id, "transactionIdentifier": str(d.lookup_id)},
        ],
        "meter": {"meterId": d.meter_number},
    }
    if utility is not None:
        body["receiver"] = _wire_party(utility, "receiver.id", f"utility {utility.name}")
    try:
        return v3.MeterLookupRequest.model_validate_json(json.dumps(body))
    except ValidationError as e:
        raise BodyRefused(describe(e)) from None


def _read_error(status: int, content: bytes) -> Outcome:
    try:
        error = v3.ErrorDetailSeen.model_validate_json(content)
    except ValidationError:
        return Outcome("our_fault", detail=f"HTTP {status} without an ErrorDetail: {content[:300]!r}")
    sent = content.decode("utf-8", "replace")
    summary = f"HTTP {status} {error.error_type}: {error.error_message or ''}"
    if status == 400 and error.error_type in v3.NOT_SUPPORTED:
        return Outcome("not_supported", error_type=error.error_type, detail=summary)
    if error.error_type == "FORMAT_ERROR":
        detail = error.detail_message if isinstance(error.detail_message, str) else json.dumps(error.detail_message)
        return Outcome("refused", error_type="FORMAT_ERROR", detail=f"{summary} {detail}", provider_error=sent)
    return Outcome("our_fault", error_type=error.error_type, detail=summary, provider_error=sent)


class Bridge:
    """Calls one provider. Its settings can change while it runs (`reconfigure`); calls under way finish on the
    client they started with."""

    def __init__(self, directory: Directory, settings: Settings, client: httpx.AsyncClient) -> None:
        self.directory, self.settings, self.client = directory, settings, client
        pid = directory.provider.provider_id
        self.breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=5, expected_exception=Transient, name=pid)
        self.breaker_state = STATE_CLOSED
        self.in_flight = asyncio.Semaphore(directory.provider.max_in_flight)

    def reconfigure(self, directory: Directory, client: httpx.AsyncClient) -> None:
        if directory.provider.max_in_flight != self.directory.provider.max_in_flight:
            # Calls holding the old semaphore release it; new calls queue on the new bound.
            self.in_flight = asyncio.Semaphore(directory.provider.max_in_flight)
        self.directory, self.client = directory, client

    def _watch_breaker(self) -> None:
        state = self.breaker.state
        if state != self.breaker_state:
            pid = self.directory.provider.provider_id
            log.warning("circuit breaker changed state", provider=pid, before=self.breaker_state, after=state)
            metrics.BREAKER_CHANGES.labels(pid, state).inc()
            metrics.BREAKER_OPEN.labels(pid).set(0 if state == STATE_CLOSED else 1)
            self.breaker_state = state

    async def _post(self, client: httpx.AsyncClient, body: v3.MeterLookupRequest, seconds: float) -> Outcome:
        try:
            r = await client.post(
                v3.PATH.format(lookup_id=body.id),
                content=body.model_dump_json(by_alias=True, exclude_none=True),
                headers={"content-type": "application/json", **(tracing.inject() if tracing.enabled() else {})},
                timeout=seconds,
            )
        except httpx.HTTPError as e:  # connection refused, reset, timed out, TLS refused
            raise Transient(f"{type(e).__name__}: {e}") from None
        if r.status_code == 201:
            try:
                return Outcome("supported", response=v3.MeterLookupResponse.model_validate_json(r.content))
            except ValidationError as e:
                return Outcome("our_fault", detail=f"unreadable 201 answer: {str(e)[:300]}")
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise Transient(f"HTTP {r.status_code}")
        if r.status_code in (401, 403):
            return Outcome("refused", detail=f"HTTP {r.status_code}: the provider refused our credentials")
        return _read_error(r.status_code, r.content)

    async def lookup(self, req: LookupRequested) -> Outcome:
        """Calls the provider until it answers, or the round's deadline leaves no time for another try."""
        try:
            body = request_body(req, self.directory, self.settings)
        except BodyRefused as e:
            return Outcome("refused", error_type="ConfigurationError", detail=f"not sent: {e}")
        deadline, pid = req.data.deadline, req.data.provider_id

        def remaining() -> float:
            return (deadline - datetime.now(UTC)).total_seconds()

        def out_of_time(state: RetryCallState) -> bool:
            return remaining() <= (state.upcoming_sleep or 0)

        def before_sleep(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            metrics.RETRIES.labels(pid).inc()
            log.info(
                "retrying a lookup",
                provider=pid,
                lookup=str(req.data.lookup_id),
                attempt=state.attempt_number,
                reason=f"{type(failure).__name__}: {failure}",
                wait_s=round(state.upcoming_sleep, 2),
            )

        sent_unanswered = False  # a try that may have reached the provider, whose answer we did not get
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((Transient, CircuitBreakerError, AnswerLost)),
            stop=out_of_time,
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if remaining() <= 0:
                        raise DeadlinePassed
                    async with self.in_flight:
                        timeout = min(self.directory.provider.timeout_seconds, remaining())
                        try:
                            outcome: Outcome = await self.breaker.call_async(self._post, self.client, body, timeout)
                        except Transient:
                            sent_unanswered = True
                            raise
                        finally:
                            self._watch_breaker()
                    if sent_unanswered and outcome.error_type == "DUPLICATE_RECORD":
                        # Our lookup id stays in thirdPartyIdentifiers; only the provider-facing id is new.
                        body = body.model_copy(update={"id": uuid.uuid4(), "time": datetime.now(UTC)})
                        sent_unanswered = False
                        raise AnswerLost(outcome.detail)
                    return outcome
        except (Transient, CircuitBreakerError, DeadlinePassed, AnswerLost) as e:
            return Outcome("no_answer", detail=f"{type(e).__name__}: {e}")
        raise AssertionError("unreachable: tenacity returns or re-raises")
