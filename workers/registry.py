"""Who handles which topic: the one registry. Consumer groups here match `consumers` in topics.yaml."""

from __future__ import annotations

import functools

from kernel.settings import Settings
from schemas.commands import ConfirmSupportRequested
from schemas.lookup import LookupResponded
from schemas.purchase import PurchaseAttempted
from workers.confirm_support import handle_confirm_support
from workers.inbound import ConsumerFlow
from workers.lookup import handle_purchase_attempts
from workers.responses import handle_lookup_responses

CONSUMERS = ("lookup", "responses", "commands")
LOOPS = ("sweeper", "outbox-relay")
ALL = (*CONSUMERS, *LOOPS)


def consumer_flow(name: str, settings: Settings) -> ConsumerFlow:
    p = settings.topic_prefix
    if name == "lookup":
        handler = functools.partial(handle_purchase_attempts, deadline_seconds=settings.round_deadline_seconds)
        return ConsumerFlow("lookup", p + "ppu-lookup-worker", "purchase_attempts", PurchaseAttempted, handler)
    if name == "responses":
        return ConsumerFlow(
            "responses",
            p + "ppu-response-consumer",
            "lookup_responses",
            LookupResponded,
            functools.partial(handle_lookup_responses, max_skew_seconds=settings.max_clock_skew_seconds),
        )
    if name == "commands":
        return ConsumerFlow(
            "commands",
            p + "ppu-command-consumer",
            "operator_commands",
            ConfirmSupportRequested,
            functools.partial(
                handle_confirm_support,
                signing_key=key.get_secret_value() if (key := settings.command_signing_key) else None,
            ),
        )
    raise KeyError(name)
