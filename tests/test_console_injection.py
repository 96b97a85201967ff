"""Injection attempts in every form field and path parameter of the console: SQL, markup, template syntax,
path tricks, LIKE wildcards, oversized numbers. Nothing may answer 5xx, let anyone in, change data, or come
back unescaped in a page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from kernel.settings import Settings
from tests.console_server import login, serving
from tests.harness import PASSWORD, seed_reference

METER = "0401000777"
SCRIPT = "<script>alert(1)</script>"
PAYLOADS = [
    "' OR '1'='1",
    "'; DROP TABLE meters; --",
    "0401000777' OR 1=1 --",
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}{% raw %}",
    "../../etc/passwd",
    "%_%",
    "99999999999999999999",
    "p1\r\nSet-Cookie: evil=1",
]


@pytest.fixture
async def console(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[str]:
    await seed_reference(db)
    await db.execute("INSERT INTO meters (meter_number) VALUES ($1)", METER)
    await db.execute("INSERT INTO utilities VALUES ('u1', 'Utility One')")
    async with serving(settings.model_copy(update={"console_command_wait_seconds": 0.2})) as (url, _):
        yield url


async def snapshot(db: asyncpg.Connection) -> tuple[object, ...]:
    row = await db.fetchrow(
        """SELECT (SELECT count(*) FROM meters), (SELECT count(*) FROM console_users),
                  (SELECT count(*) FROM providers), (SELECT count(*) FROM utility_routing_preferences),
                  (SELECT count(*) FROM meter_preferences),
                  (SELECT count(*) FROM rebroadcast_marks)"""
    )
    assert row is not None
    return tuple(row)


def assert_safe(r: httpx.Response, payload: str) -> None:
    assert r.status_code < 500, (payload, r.status_code, r.text[:300])
    # JSON may carry the input back as data (an error naming what was refused); a page must escape it, and
    # nosniff stops a browser from reading JSON as a page.
    assert r.headers["x-content-type-options"] == "nosniff"
    if "<" in payload and r.headers.get("content-type", "").startswith("text/html"):
        assert payload not in r.text, f"{payload!r} echoed unescaped"
    assert "evil=1" not in r.headers.get("set-cookie", ""), "header injection"


async def test_login_form_fields_resist_injection(console: str, db: asyncpg.Connection) -> None:
    before = await snapshot(db)
    async with httpx.AsyncClient(base_url=console, timeout=20) as c:
        token = (await c.get("/api/v1/session")).json()["csrf_token"]
        # One attempt per payload: the address limit (20 failures) must not lock the admin out below.
        for payload in PAYLOADS[:8]:
            r = await c.post(
                "/login",
                data={"institution": payload, "username": payload, "password": payload, "csrf_token": token},
            )
            assert_safe(r, payload)
            assert r.status_code == 401, (payload, r.status_code)
            assert (await c.get("/api/v1/meters", params={"q": "04"})).status_code == 401, "let in"
        # Markup in the user name is stored in the audit log as it was typed and shown escaped.
        r = await c.post("/login", data={"institution": "i1", "username": SCRIPT, "password": "x", "csrf_token": token})
        assert r.status_code == 401
        await login(c, "ada")
        audit = await c.get("/ppu/audit")
        assert audit.status_code == 200 and SCRIPT not in audit.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in audit.text
    assert await snapshot(db) == before


async def test_operator_form_fields_and_paths_resist_injection(console: str, db: asyncpg.Connection) -> None:
    before = await snapshot(db)
    async with httpx.AsyncClient(base_url=console, timeout=20) as c:
        token = (await login(c, "ada", password=PASSWORD)).json()["csrf_token"]
        for payload in PAYLOADS:
            path = quote(payload, safe="")
            search = await c.get("/ppu/meters", params={"q": payload})
            assert_safe(search, payload)
            assert f"/ppu/meters/{METER}" not in search.text, f"{payload!r} matched a meter it does not name"
            api = await c.get("/api/v1/meters", params={"q": payload})
            assert_safe(api, payload)
            assert api.status_code == 422 or api.json() == [], (payload, api.text[:200])
            assert_safe(await c.get(f"/ppu/meters/{path}"), payload)
            assert_safe(await c.get(f"/api/v1/meters/{path}"), payload)
            writes = [
                c.build_request("POST", f"/ppu/meters/{path}/confirm-support", data={"csrf_token": token}),
                c.build_request(
                    "POST", f"/ppu/meters/{METER}/preference", data={"csrf_token": token, "provider_id": payload}
                ),
                c.build_request(
                    "POST", f"/ppu/meters/{path}/preference", data={"csrf_token": token, "provider_id": "p1"}
                ),
                c.build_request(
                    "POST",
                    "/ppu/routing/u1",
                    data={"csrf_token": token, "provider_id": payload, "kind": "ranked", "rank": "1"},
                ),
                c.build_request(
                    "POST",
                    "/ppu/routing/u1",
                    data={"csrf_token": token, "provider_id": "p1", "kind": payload, "rank": payload},
                ),
                c.build_request(
                    "POST",
                    "/ppu/routing/u1",
                    data={"csrf_token": token, "provider_id": "p1", "kind": "unranked", "weight": payload},
                ),
                c.build_request(
                    "POST", f"/ppu/routing/{path}", data={"csrf_token": token, "provider_id": "p1", "kind": "unranked"}
                ),
                c.build_request("POST", f"/api/v1/meters/{path}/confirm-support", headers={"X-CSRF-Token": token}),
                c.build_request(
                    "PUT",
                    f"/api/v1/meters/{METER}/preference",
                    headers={"X-CSRF-Token": token},
                    json={"provider_id": payload},
                ),
                c.build_request(
                    "PUT",
                    f"/api/v1/utilities/u1/preferences/{path}",
                    headers={"X-CSRF-Token": token},
                    json={"kind": "ranked", "rank": 1},
                ),
            ]
            for request in writes:
                r = await c.send(request)
                assert_safe(r, payload)
                assert 400 <= r.status_code < 500, (payload, r.request.url, r.status_code)
        assert (await c.post("/logout", data={"csrf_token": SCRIPT})).status_code == 403
    assert await snapshot(db) == before
