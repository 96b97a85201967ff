"""The one declaration of workers: who handles which topic, in which group, under which process name.

Read by `ppu worker` (its choices), the process runner, `make run` (`ppu run` starts every worker here), the
compose file's test (a service per worker), the fault scenarios (the groups they watch) and the topics.yaml
check (each consumed topic names the group declared here).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from kernel.settings import Settings
from messaging.inbound import Inbound
from schemas.commands import ConfirmSupportRequested
from schemas.envelope import Envelope
from schemas.lookup import LookupResponded
from schemas.purchase import PurchaseAttempted
from workers.confirm_support import handle_confirm_support
from workers.lookup import handle_purchase_attempts
from workers.responses import handle_lookup_responses
from workers.unit_of_work import UnitOfWork

Handler = Callable[[list[Inbound[Any]], UnitOfWork], Awaitable[None]]


@dataclass(frozen=True)
class Worker:
    name: str  # `ppu worker NAME`
    service: str  # its service in docker-compose.yml
    kind: Literal["consumer", "loop"]
    group: str | None = None  # consumer group, after the topic prefix (topics.yaml `consumers`)
    topic_key: str | None = None  # the consumed topic's key in topics.yaml
    model: type[Envelope[Any]] | None = None
    handler: Callable[[Settings], Handler] | None = None  # the handler, bound to its settings
    # Message ids kept in the inbox, so that one delivered twice is applied once. A flow whose handler already has a
    # key of its own for that goes without: the inbox row would only repeat it, in every transaction.
    inbox: bool = True


WORKERS = (
    Worker(
        "lookup",
        "lookup-worker",
        "consumer",
        "ppu-lookup-worker",
        "purchase_attempts",
        PurchaseAttempted,
        lambda s: functools.partial(
            handle_purchase_attempts,
            deadline_seconds=s.round_deadline_seconds,
            budget_seconds=s.decision_budget_seconds,
        ),
        # The attempt id is the purchase's own key, kept as long as the inbox keeps message ids (the live window):
        # the same event again, under its id or a new one, finds its attempt stored and has its one decision
        # (workers/lookup.py). An inbox row per attempt was a tenth of the database's work in the flow.
        inbox=False,
    ),
    Worker(
        "responses",
        "response-consumer",
        "consumer",
        "ppu-response-consumer",
        "lookup_responses",
        LookupResponded,
        lambda s: functools.partial(
            handle_lookup_responses,
            max_skew_seconds=s.max_clock_skew_seconds,
            budget_seconds=s.decision_budget_seconds,
        ),
    ),
    Worker(
        "commands",
        "command-consumer",
        "consumer",
        "ppu-command-consumer",
        "operator_commands",
        ConfirmSupportRequested,
        lambda s: functools.partial(
            handle_confirm_support, signing_key=k.get_secret_value() if (k := s.command_signing_key) else None
        ),
    ),
    Worker("sweeper", "deadline-sweeper", "loop"),
    Worker("outbox-relay", "outbox-relay", "loop"),
)
BY_NAME = {w.name: w for w in WORKERS}
ALL = tuple(BY_NAME)
CONSUMERS = tuple(w.name for w in WORKERS if w.kind == "consumer")


@dataclass(frozen=True)
class ConsumerFlow:
    """A consumer worker as the runtime runs it: its group (with the prefix), topic, model and bound handler."""

    worker: str
    group_id: str
    topic_key: str
    model: type[Envelope[Any]]
    handler: Handler
    inbox: bool = True


def consumer_flow(name: str, settings: Settings) -> ConsumerFlow:
    w = BY_NAME[name]
    assert w.group and w.topic_key and w.model and w.handler, f"{name} is not a consumer"
    return ConsumerFlow(name, settings.topic_prefix + w.group, w.topic_key, w.model, w.handler(settings), w.inbox)
