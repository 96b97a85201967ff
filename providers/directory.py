"""What the HTTP bridge reads from the registry: its provider's settings and who every party is on the wire.

A snapshot is loaded at start and again every few seconds, so `ppu providers update` reaches a running bridge
without a restart (base URL, credentials, CA file, timeouts, in-flight limit, Electrum ids and names).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kernel.dbconn import Db
from kernel.errors import PpuError


@dataclass(frozen=True)
class Party:
    """An institution as a PPU v3 body names it: Electrum's numeric id (None when not yet registered) and name."""

    electrum_id: str | None
    name: str


@dataclass(frozen=True)
class ProviderConfig:
    provider_id: str
    party: Party
    base_url: str
    credentials_ref: str | None  # the variable holding USER:PASSWORD; None: the provider takes no credentials
    ca_file: str | None  # a CA bundle for a provider whose certificate a private CA signed
    timeout_seconds: float
    max_in_flight: int

    def credentials(self) -> tuple[str, str] | None:
        """USER and PASSWORD from the variable named in the registry (secrets never live in the database)."""
        if not self.credentials_ref:
            return None
        user, sep, password = os.environ.get(self.credentials_ref, "").partition(":")
        if not sep:
            raise PpuError(f"set {self.credentials_ref} to USER:PASSWORD for provider {self.provider_id}")
        return user, password

    def connection_settings(self) -> tuple[str, str | None, str | None, tuple[str, str] | None]:
        """What a change of requires a new HTTP client (the rest applies per call)."""
        return self.base_url, self.credentials_ref, self.ca_file, self.credentials()


@dataclass(frozen=True)
class Directory:
    provider: ProviderConfig
    institutions: dict[str, Party]  # client institutions by our institution id
    utilities: dict[str, Party]  # by utility name (what a lookup request carries)


async def load_directory(conn: Db, provider_id: str) -> Directory:
    row = await conn.fetchrow("SELECT * FROM providers WHERE provider_id = $1", provider_id)
    if row is None:
        raise PpuError(f"unknown provider {provider_id}")
    if row["integration_mode"] != "http" or not row["base_url"]:
        raise PpuError(f"provider {provider_id} does not integrate over HTTP (no base URL)")
    provider = ProviderConfig(
        provider_id,
        Party(row["electrum_id"], row["name"]),
        row["base_url"],
        row["credentials_ref"],
        row["ca_file"],
        row["timeout_ms"] / 1000,
        row["max_in_flight"],
    )
    institutions = {
        r["institution_id"]: Party(r["electrum_id"], r["name"])
        for r in await conn.fetch("SELECT institution_id, electrum_id, name FROM institutions")
    }
    utilities = {
        r["name"]: Party(r["electrum_id"], r["name"])
        for r in await conn.fetch("SELECT name, electrum_id FROM utilities")
    }
    return Directory(provider, institutions, utilities)
