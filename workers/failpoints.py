"""Failpoints: named places in the workers where the fault scenarios kill the process at an exact moment.

`PPU_FAILPOINTS="after_db_commit:5"` makes the process SIGKILL itself the 5th time it passes
`after_db_commit` (several, comma-separated). Unset, as in production, passing one is a dict lookup.
Hand-written: the failpoint libraries for Python are test-only mocks, and this must work in a real worker
process that another process starts and watches.

The places: `mid_transaction` (a batch applied, its transaction not committed), `after_db_commit` (committed
in PostgreSQL, the Kafka offset not yet committed), `after_publish` (the relay's sends acknowledged, the rows
not yet marked sent).
"""

from __future__ import annotations

import os
import signal

PLACES = ("mid_transaction", "after_db_commit", "after_publish")


class Failpoints:
    def __init__(self, spec: str = "") -> None:
        self.plan: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, nth = part.partition(":")
            if name not in PLACES or not nth.isdigit() or int(nth) < 1:
                raise ValueError(f"bad failpoint {part!r}: expected PLACE:N with PLACE one of {', '.join(PLACES)}")
            self.plan[name] = int(nth)
        self.passed: dict[str, int] = {}

    def hit(self, name: str) -> None:
        nth = self.plan.get(name)
        if nth is None:
            return
        self.passed[name] = self.passed.get(name, 0) + 1
        if self.passed[name] == nth:
            os.kill(os.getpid(), signal.SIGKILL)


NONE = Failpoints()
