"""Structured JSON logs (structlog) for long-running processes; quiet library logs for one-shot commands."""

from __future__ import annotations

import logging
import sys

import structlog

LIBRARIES = ("aiokafka", "kafka", "asyncpg")


def configure_for_worker(level: str) -> None:
    """One JSON object per line on stderr, from our code and from aiokafka/asyncpg alike."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The CLI silenced the libraries for one-shot commands (configure_for_command); a worker wants their
    # warnings, and at INFO their group membership changes (joins, leaves, poll-interval expiry).
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)


def configure_for_command() -> None:
    """A one-shot command reports its own failure in one line; the libraries' retry chatter is noise."""
    logging.basicConfig(level=logging.CRITICAL)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
