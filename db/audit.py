"""The audit log's one writer: console actions, CLI commands and the command consumer all record through here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.dbconn import Db


@dataclass(frozen=True)
class AuditRow:
    actor: str
    institution_id: str | None  # None: a deployment-wide action (the CLI's registry commands)
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]


async def write_audit(conn: Db, rows: list[AuditRow]) -> None:
    """Every row in one statement (the command consumer audits a whole batch at once)."""
    if not rows:
        return
    await conn.execute(
        """INSERT INTO audit_log (actor, institution_id, action, target, outcome, details)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])""",
        [r.actor for r in rows],
        [r.institution_id for r in rows],
        [r.action for r in rows],
        [r.target for r in rows],
        [r.outcome for r in rows],
        [r.details for r in rows],
    )


async def audit_cli(
    conn: Db, action: str, target: str | None, outcome: str, details: dict[str, Any] | None = None
) -> None:
    """A deployment-wide action from the shell (registry changes): no institution owns it."""
    await write_audit(conn, [AuditRow("cli", None, action, target, outcome, details or {})])
