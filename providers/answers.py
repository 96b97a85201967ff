"""A provider's answer as our lookup-responded event: status, and what a 201 said about the meter (utility,
customer, purchase limits) for the meter page. Customer details go to the event, never to a log line."""

from __future__ import annotations

from datetime import UTC, datetime

from providers import ppu_v3 as v3
from providers.http_bridge import Outcome
from schemas.lookup import CustomerInfo, LookupRequested, LookupResponded, LookupRespondedData, UtilityInfo
from schemas.purchase import Money


def _money(amount: v3.LedgerAmount | None) -> Money | None:
    if amount is None or amount.amount < 0:
        return None
    return Money(amount=amount.amount, currency=amount.currency)


def as_event(req: LookupRequested, outcome: Outcome) -> LookupResponded:
    d, resp = req.data, outcome.response
    utility = customer = None
    if resp is not None:
        u, c = resp.utility, resp.customer
        if u.name:
            utility = UtilityInfo(name=u.name, client_id=u.client_id, address=u.address, message=u.message)
        if c.first_name or c.last_name or c.address:
            customer = CustomerInfo(first_name=c.first_name, last_name=c.last_name, address=c.address)
    data = LookupRespondedData(
        lookup_id=d.lookup_id,
        provider_id=d.provider_id,
        meter_number=d.meter_number,
        status="supported" if outcome.kind == "supported" else "not_supported",
        responded_at=datetime.now(UTC),
        utility=utility,
        customer=customer,
        min_amount=_money(resp.min_amount) if resp else None,
        max_amount=_money(resp.max_amount) if resp else None,
    )
    return LookupResponded.new(
        data, source=f"ppu/provider-bridge/{d.provider_id}", correlationid=req.correlationid, causationid=str(req.id)
    )
