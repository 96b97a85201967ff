"""The provider's health as the bridge sees it: MISCONFIGURED while the provider refuses what we send (400
FORMAT_ERROR, bad credentials, no valid body), back to HEALTHY once it answers about a meter."""

from __future__ import annotations

import asyncpg
import structlog

from providers.http_bridge import Outcome

log = structlog.get_logger()


class HealthMarks:
    """MISCONFIGURED while the provider refuses what we send; back to HEALTHY once it answers about a meter."""

    def __init__(self, pool: asyncpg.Pool, provider_id: str) -> None:
        self.pool, self.provider_id = pool, provider_id
        self.misconfigured: str | None = ""  # the detail last stored; "" = not known yet

    async def saw(self, outcome: Outcome) -> None:
        try:
            if outcome.kind == "refused" and outcome.detail != self.misconfigured:
                await self.pool.execute(
                    """UPDATE providers SET health = 'MISCONFIGURED', health_detail = $2, health_changed_at = now()
                       WHERE provider_id = $1""",
                    self.provider_id,
                    outcome.detail[:2000],
                )
                self.misconfigured = outcome.detail
                log.error("provider refuses our requests", provider=self.provider_id, detail=outcome.detail[:2000])
            elif outcome.kind in ("supported", "not_supported") and self.misconfigured is not None:
                await self.pool.execute(
                    """UPDATE providers SET health = 'HEALTHY', health_detail = NULL, health_changed_at = now()
                       WHERE provider_id = $1 AND health = 'MISCONFIGURED'""",
                    self.provider_id,
                )
                self.misconfigured = None
        except (asyncpg.PostgresError, OSError) as e:  # health is for operators; the lookup itself goes on
            log.warning("cannot store provider health", provider=self.provider_id, error=str(e))
