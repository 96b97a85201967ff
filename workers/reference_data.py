"""Reference data routing reads for every batch — providers (enabled, health), each institution's providers, the
utilities' routing preferences — cached per worker process and read again only when it changed.

The batch's facts statement (workers/routing_context.py) returns the database's reference version and, only when
it differs from the cached one, the three tables whole: one statement, one snapshot, so a cached copy is never older
than the version that statement saw (db/migrations/0016_reference_version.sql bumps it in every changing
transaction). Nothing here is mutated once built: every batch's context shares it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from domain.routing import Preference

# Parts of the facts statement (kind, key, institution, provider, text, rank or enabled, weight), each read only when
# the caller's version ($3) is not the database's. The version is worked out once per statement (`with_reference`
# puts it first): called in each part, it was a tenth of a millisecond four times a batch.
STAMP = "WITH stamp AS MATERIALIZED (SELECT reference_stamp() AS s)"
STALE = "(SELECT s FROM stamp) IS DISTINCT FROM $3::text"
PARTS = f"""
UNION ALL SELECT 'v', (SELECT s FROM stamp), NULL, NULL, NULL, NULL, NULL
UNION ALL SELECT 'e', NULL, NULL, provider_id, health, enabled::int, NULL FROM providers WHERE {STALE}
UNION ALL SELECT 'i', NULL, institution_id, provider_id, NULL, NULL, NULL FROM institution_providers WHERE {STALE}
UNION ALL SELECT 'u', utility_id, institution_id, provider_id, kind, rank, weight FROM utility_routing_preferences
 WHERE {STALE}"""


def with_reference(facts: str) -> str:
    """A facts statement (a UNION ALL of rows shaped as above) that also reads the reference version and, when stale,
    the reference tables; the parts lean on the version worked out first, so they go only with it."""
    return f"{STAMP}\n{facts}{PARTS}"


KINDS = frozenset("eiu")
Fact = tuple[str, str | None, str | None, str | None, str | None, int | None, int | None]  # a row of that statement


@dataclass(frozen=True)
class Reference:
    version: str  # the database (oid/cluster start) and version it was read at: reference_stamp()
    providers: dict[str, tuple[bool, str]]  # provider id → (enabled, health)
    institution_providers: dict[str, frozenset[str]]
    preferences: dict[str, dict[str, list[Preference]]]  # institution → utility → preferences


class ReferenceCache:
    """The latest reference data of each database this process talks to (tests talk to several)."""

    def __init__(self, databases: int = 8) -> None:
        self.databases = databases
        self._by_database: OrderedDict[str, Reference] = OrderedDict()
        self._last: Reference | None = None

    def version(self) -> str | None:
        """The version to send: the last one read (a different database's never matches: its id differs)."""
        return self._last.version if self._last else None

    def settle(self, version: str, rows: list[Fact]) -> Reference:
        """The reference data at `version`: the cached copy, or one built from `rows` (the statement read the tables
        because the version we sent was not this one)."""
        database = version.rpartition(":")[0]
        cached = self._by_database.get(database)
        if cached is not None and cached.version == version and not rows:
            self._last = cached
            return cached
        providers: dict[str, tuple[bool, str]] = {}
        inst: dict[str, set[str]] = {}
        prefs: dict[str, dict[str, list[Preference]]] = {}
        for kind, utility, inst_id, provider, text, rank, weight in rows:
            assert provider is not None
            if kind == "e":
                assert text is not None
                providers[provider] = (bool(rank), text)
            elif kind == "i":
                assert inst_id is not None
                inst.setdefault(inst_id, set()).add(provider)
            else:
                assert inst_id is not None and utility is not None and text is not None and weight is not None
                prefs.setdefault(inst_id, {}).setdefault(utility, []).append(
                    Preference(provider, text, rank, weight)  # type: ignore[arg-type]  # the table's CHECK
                )
        ref = Reference(version, providers, {i: frozenset(p) for i, p in inst.items()}, prefs)
        self._by_database[database] = self._last = ref
        self._by_database.move_to_end(database)
        while len(self._by_database) > self.databases:
            self._by_database.popitem(last=False)
        return ref


CACHE = ReferenceCache()  # one per process: every flow's batches read through it
