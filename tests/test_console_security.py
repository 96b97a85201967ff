"""Console authorisation: roles, institutions, CSRF, throttling, session fixation, no leaked secrets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from console.auth import revoke_sessions
from kernel.settings import Settings
from tests.console_server import login, serving
from tests.harness import PASSWORD, seed_reference

METER = "0401000777"


@pytest.fixture
async def console(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[tuple[str, str]]:
    await seed_reference(db)
    await db.execute("INSERT INTO meters (meter_number) VALUES ($1)", METER)
    await db.execute("INSERT INTO utilities VALUES ('u1', 'Utility One')")
    async with serving(settings.model_copy(update={"console_command_wait_seconds": 0.2})) as served:
        yield served


def client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=20)


async def test_unauthenticated_requests_are_refused(console: tuple[str, str]) -> None:
    async with client(console[0]) as c:
        assert (await c.get("/api/v1/meters?q=04")).status_code == 401
        assert (await c.get(f"/api/v1/meters/{METER}")).status_code == 401
        page = await c.get(f"/ppu/meters/{METER}")
        assert page.status_code == 303 and page.headers["location"] == "/login"


async def test_viewer_cannot_confirm_support(console: tuple[str, str], db: asyncpg.Connection) -> None:
    async with client(console[0]) as c:
        session = (await login(c, "vic")).json()
        assert session["role"] == "viewer"
        r = await c.post(f"/api/v1/meters/{METER}/confirm-support", headers={"X-CSRF-Token": session["csrf_token"]})
        assert r.status_code == 403
        page = await c.get(f"/ppu/meters/{METER}")
        assert page.status_code == 200 and 'id="confirm-support"' not in page.text
        form = await c.post(f"/ppu/meters/{METER}/confirm-support", data={"csrf_token": session["csrf_token"]})
        assert form.status_code == 403
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'confirm_support%'") == 0


async def test_operator_confirm_support_emits_a_command(console: tuple[str, str], db: asyncpg.Connection) -> None:
    async with client(console[0]) as c:
        token = (await login(c, "olga")).json()["csrf_token"]
        r = await c.post(f"/api/v1/meters/{METER}/confirm-support", headers={"X-CSRF-Token": token})
        assert r.status_code == 202
    row = await db.fetchrow(
        "SELECT actor, institution_id, details FROM audit_log WHERE action = 'confirm_support_requested'"
    )
    assert row is not None and (row["actor"], row["institution_id"]) == ("olga", "i1")
    assert row["details"]["command_id"] == r.json()["command_id"]


async def test_one_institution_cannot_act_with_anothers_providers(
    console: tuple[str, str], db: asyncpg.Connection
) -> None:
    async with client(console[0]) as c:
        token = (await login(c, "zed", institution="i2")).json()["csrf_token"]
        meter = (await c.get(f"/api/v1/meters/{METER}")).json()
        assert [p["provider_id"] for p in meter["providers"]] == ["p1"], "only i2's providers are shown"
        h = {"X-CSRF-Token": token}
        assert (
            await c.put(f"/api/v1/meters/{METER}/preference", headers=h, json={"provider_id": "p3"})
        ).status_code == 403
        assert (
            await c.put("/api/v1/utilities/u1/preferences/p3", headers=h, json={"kind": "ranked", "rank": 1})
        ).status_code == 403
        assert (
            await c.put(f"/api/v1/meters/{METER}/preference", headers=h, json={"provider_id": "p1"})
        ).status_code == 204
        health = (await c.get("/api/v1/providers/health")).json()
        assert [x["provider_id"] for x in health] == ["p1"]
    assert await db.fetchval("SELECT provider_id FROM meter_preferences WHERE meter_number = $1", METER) == "p1"
    changes = await db.fetch("SELECT actor, action, details FROM audit_log WHERE action = 'set_meter_preference'")
    assert [(r["actor"], r["details"]["after"]) for r in changes] == [("zed", "p1")]


async def test_writes_without_a_valid_csrf_token_are_refused(console: tuple[str, str], db: asyncpg.Connection) -> None:
    async with client(console[0]) as c:
        form = await c.post("/login", data={"institution": "i1", "username": "olga", "password": PASSWORD})
        assert form.status_code == 422 or form.status_code == 403  # the token field is required
        assert (
            await c.post(
                "/login", data={"institution": "i1", "username": "olga", "password": PASSWORD, "csrf_token": "forged"}
            )
        ).status_code == 403
        await login(c, "ada")
        assert (await c.post(f"/api/v1/meters/{METER}/confirm-support")).status_code == 403
        assert (
            await c.post(f"/api/v1/meters/{METER}/confirm-support", headers={"X-CSRF-Token": "forged"})
        ).status_code == 403
        assert (
            await c.post(f"/ppu/meters/{METER}/preference", data={"csrf_token": "forged", "provider_id": "p2"})
        ).status_code == 403
    assert await db.fetchval("SELECT provider_id FROM meter_preferences WHERE meter_number = $1", METER) is None


async def test_wrong_passwords_are_throttled(console: tuple[str, str]) -> None:
    async with client(console[0]) as c:
        for _ in range(5):
            assert (await login(c, "olga", password="wrong password")).status_code == 401
        refused = await login(c, "olga")  # the right password, too late
        assert refused.status_code == 401 and "too many failed logins" in refused.json()["detail"]
        assert (await login(c, "vic")).status_code == 200, "another account from the same place is not locked yet"


async def test_login_starts_a_new_session(console: tuple[str, str]) -> None:
    async with client(console[0]) as c:
        await c.get("/api/v1/session")
        before = c.cookies.get("ppu_session")
        await login(c, "olga")
        after = c.cookies.get("ppu_session")
        assert before and after and before != after
        cookie = next(h for h in (await login(c, "olga")).headers.get_list("set-cookie") if "ppu_session" in h)
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()


async def test_no_page_or_api_leaks_a_password_hash_or_the_session_secret(console: tuple[str, str]) -> None:
    base, secret = console
    async with client(base) as c:
        await login(c, "ada")
        paths = [
            "/ppu/meters?q=0401",
            f"/ppu/meters/{METER}",
            "/ppu/providers",
            "/ppu/routing",
            "/ppu/audit",
            "/api/v1/meters?q=04",
            f"/api/v1/meters/{METER}",
            "/api/v1/providers/health",
            "/api/v1/utilities",
            "/api/v1/audit",
            "/api/v1/session",
            "/api/v1/openapi.json",
            "/login",
        ]
        for path in paths:
            r = await c.get(path)
            assert r.status_code == 200, path
            assert "$argon2" not in r.text and secret not in r.text and PASSWORD not in r.text, path


async def test_nul_characters_are_refused_not_a_server_error(console: tuple[str, str]) -> None:
    async with client(console[0]) as c:
        token = (await c.get("/api/v1/session")).json()["csrf_token"]
        r = await c.post(
            "/api/v1/session",
            headers={"X-CSRF-Token": token},
            json={"institution": "i1\x00", "username": "olga\x00", "password": "x"},
        )
        assert r.status_code in (401, 422), r.text
        session = (await login(c, "ada")).json()
        r = await c.put(
            "/api/v1/utilities/u%001/preferences/p1",
            headers={"X-CSRF-Token": session["csrf_token"]},
            json={"kind": "ranked", "rank": 1},
        )
        assert r.status_code in (403, 404, 422), r.text


async def test_logout_revocation_and_expiry_end_a_session_even_for_a_copied_cookie(
    console: tuple[str, str], db: asyncpg.Connection
) -> None:
    async def meters(c: httpx.AsyncClient, cookie: str) -> int:
        return (await c.get("/api/v1/meters?q=04", headers={"Cookie": f"ppu_session={cookie}"})).status_code

    async with client(console[0]) as c, client(console[0]) as other:
        token = (await login(c, "olga")).json()["csrf_token"]
        copied = c.cookies["ppu_session"]
        assert await meters(other, copied) == 200
        assert (await c.delete("/api/v1/session", headers={"X-CSRF-Token": token})).status_code == 204
        assert await meters(other, copied) == 401, "logout ends the session on the server"
        assert await db.fetchval("SELECT count(*) FROM console_sessions WHERE revoked_at IS NULL") == 0

        await login(c, "olga")
        await login(other, "olga")
        first, second = c.cookies["ppu_session"], other.cookies["ppu_session"]
        olga = await db.fetchval("SELECT user_id FROM console_users WHERE username = 'olga'")
        assert await revoke_sessions(db, olga) == 2
        assert await meters(c, first) == 401 and await meters(other, second) == 401

        await login(c, "olga")
        await db.execute("UPDATE console_sessions SET expires_at = now() - interval '1 second'")
        assert await meters(c, c.cookies["ppu_session"]) == 401, "expired on the server"
    stored = [r["session_hash"] for r in await db.fetch("SELECT session_hash FROM console_sessions")]
    assert len(stored) == 4 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored), "only hashes are stored"
