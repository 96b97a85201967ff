"""`ppu demo seed`: demo institutions, users, providers, utilities, routing preferences and meters.

Meters are not seeded: the system learns them from purchase attempts (`ppu demo traffic`).
Idempotent. User passwords are random per seed and printed once (there is no default secret in the code).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ppu.dbconn import Db
from ppu.passwords import hash_password

INSTITUTIONS = [("demo-bank", "Demo Bank"), ("corner-wallet", "Corner Wallet")]
PROVIDERS = [("prov-alpha", "Alpha Vending"), ("prov-beta", "Beta Prepaid"), ("prov-gamma", "Gamma Power")]
# Delta speaks the PPU v3 REST interface (through the HTTP bridge) to a simulator that `ppu run` starts.
HTTP_PROVIDERS = [("prov-delta", "Delta Utilities", "http://127.0.0.1:8090", "PPU_DEMO_DELTA_CREDENTIALS")]
# demo-bank sells through all four providers, corner-wallet through two.
ENABLED = {
    "demo-bank": ["prov-alpha", "prov-beta", "prov-gamma", "prov-delta"],
    "corner-wallet": ["prov-alpha", "prov-beta"],
}
UTILITIES = [("riverside", "Riverside Municipality"), ("hillcrest", "Hillcrest Utility")]
PREFERENCES = [  # utility, provider, kind, rank, weight
    ("riverside", "prov-alpha", "ranked", 1, 1),
    ("riverside", "prov-beta", "unranked", None, 3),
    ("riverside", "prov-gamma", "unranked", None, 1),
    ("hillcrest", "prov-beta", "ranked", 1, 1),
    ("hillcrest", "prov-gamma", "excluded", None, 0),
]
USERS = [
    ("demo-bank", "viewer", "viewer"),
    ("demo-bank", "operator", "operator"),
    ("demo-bank", "admin", "admin"),
    ("corner-wallet", "operator", "operator"),
]


@dataclass(frozen=True)
class DemoLogin:
    institution_id: str
    username: str
    role: str
    password: str


async def seed(conn: Db) -> list[DemoLogin]:
    logins = []
    async with conn.transaction():
        await conn.executemany("INSERT INTO institutions VALUES ($1, $2) ON CONFLICT DO NOTHING", INSTITUTIONS)
        await conn.executemany(
            "INSERT INTO providers (provider_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", PROVIDERS
        )
        await conn.executemany(
            """INSERT INTO providers (provider_id, name, integration_mode, base_url, credentials_ref)
               VALUES ($1, $2, 'http', $3, $4) ON CONFLICT DO NOTHING""",
            HTTP_PROVIDERS,
        )
        await conn.executemany(
            "INSERT INTO institution_providers VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(i, p) for i, ps in ENABLED.items() for p in ps],
        )
        await conn.executemany("INSERT INTO utilities VALUES ($1, $2) ON CONFLICT DO NOTHING", UTILITIES)
        await conn.executemany(
            "INSERT INTO utility_routing_preferences VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            PREFERENCES,
        )
        for institution, username, role in USERS:
            password = secrets.token_urlsafe(12)
            await conn.execute(
                """INSERT INTO console_users (institution_id, username, password_hash, role)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (institution_id, username)
                   DO UPDATE SET password_hash = excluded.password_hash""",
                institution,
                username,
                hash_password(password),
                role,
            )
            logins.append(DemoLogin(institution, username, role, password))
    return logins
