"""`ppu demo seed`: demo institutions, users, providers, utilities, routing preferences and meters.

Meters are not seeded: the system learns them from purchase attempts (`ppu demo traffic`).
Idempotent. User passwords are random per seed and printed once (there is no default secret in the code).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from kernel.dbconn import Db
from kernel.passwords import hash_password

# Electrum institution ids (1-11 digits) are made up for the demo; a real switch gets them from Electrum.
SWITCH_ELECTRUM_ID = "10000001"
INSTITUTIONS = [("demo-bank", "Demo Bank", "20000101"), ("corner-wallet", "Corner Wallet", "20000102")]
# The switch itself, which runs the deployment: its admin works dead letters in the console. It sells nothing.
OPERATOR = ("switch-ops", "Demo Switch operations", SWITCH_ELECTRUM_ID)
PROVIDERS = [
    ("prov-alpha", "Alpha Vending", "30000201"),
    ("prov-beta", "Beta Prepaid", "30000202"),
    ("prov-gamma", "Gamma Power", "30000203"),
]
# Delta speaks the PPU v3 REST interface (through the HTTP bridge) to a simulator that `ppu run` starts.
# Its URL is the simulator's, on a port `ppu run` picks (DELTA_URL when seeded alone).
DELTA_URL = "http://127.0.0.1:8090"
HTTP_PROVIDERS = [("prov-delta", "Delta Utilities", "30000204", "PPU_DEMO_DELTA_CREDENTIALS")]
# demo-bank sells through all four providers, corner-wallet through two.
ENABLED = {
    "demo-bank": ["prov-alpha", "prov-beta", "prov-gamma", "prov-delta"],
    "corner-wallet": ["prov-alpha", "prov-beta"],
}
UTILITIES = [("riverside", "Riverside Municipality", "40000301"), ("hillcrest", "Hillcrest Utility", "40000302")]
PREFERENCES = [  # institution, utility, provider, kind, rank, weight (each institution its own)
    ("demo-bank", "riverside", "prov-alpha", "ranked", 1, 1),
    ("demo-bank", "riverside", "prov-beta", "unranked", None, 3),
    ("demo-bank", "riverside", "prov-gamma", "unranked", None, 1),
    ("demo-bank", "hillcrest", "prov-beta", "ranked", 1, 1),
    ("demo-bank", "hillcrest", "prov-gamma", "excluded", None, 0),
    ("corner-wallet", "riverside", "prov-beta", "ranked", 1, 1),
]
USERS = [
    ("demo-bank", "viewer", "viewer"),
    ("demo-bank", "operator", "operator"),
    ("demo-bank", "admin", "admin"),
    ("corner-wallet", "operator", "operator"),
    ("switch-ops", "oncall", "admin"),
]


@dataclass(frozen=True)
class DemoLogin:
    institution_id: str
    username: str
    role: str
    password: str


async def seed(conn: Db, delta_url: str = DELTA_URL) -> list[DemoLogin]:
    logins = []
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO institutions (institution_id, name, electrum_id) VALUES ($1, $2, $3)
               ON CONFLICT (institution_id) DO UPDATE SET electrum_id = excluded.electrum_id""",
            [*INSTITUTIONS, OPERATOR],
        )
        await conn.execute(
            """UPDATE institutions SET operates_deployment = (institution_id = $1)
               WHERE operates_deployment OR institution_id = $1""",
            OPERATOR[0],
        )
        await conn.executemany(
            """INSERT INTO providers (provider_id, name, electrum_id) VALUES ($1, $2, $3)
               ON CONFLICT (provider_id) DO UPDATE SET electrum_id = excluded.electrum_id""",
            PROVIDERS,
        )
        await conn.executemany(
            """INSERT INTO providers (provider_id, name, electrum_id, integration_mode, credentials_ref, base_url)
               VALUES ($1, $2, $3, 'http', $4, $5)
               ON CONFLICT (provider_id)
               DO UPDATE SET electrum_id = excluded.electrum_id, base_url = excluded.base_url""",
            [(*p, delta_url) for p in HTTP_PROVIDERS],
        )
        await conn.executemany(
            "INSERT INTO institution_providers VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(i, p) for i, ps in ENABLED.items() for p in ps],
        )
        await conn.executemany(
            """INSERT INTO utilities (utility_id, name, electrum_id) VALUES ($1, $2, $3)
               ON CONFLICT (utility_id) DO UPDATE SET electrum_id = excluded.electrum_id""",
            UTILITIES,
        )
        await conn.executemany(
            """INSERT INTO utility_routing_preferences (institution_id, utility_id, provider_id, kind, rank, weight)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
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
