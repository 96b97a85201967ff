"""Every console page in a real browser (Debian's Chromium) as a viewer, an operator and an admin: each renders with
the sidebar marking where you are, nothing fails in the page (no console error, no CSP refusal, no failed or 4xx/5xx
request, the favicon and Swagger UI's assets included), and a screenshot of each is kept in .local/screenshots/pages.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from kernel.passwords import hash_password
from kernel.settings import Settings
from tests.conftest import ROOT
from tests.console_server import serving
from tests.harness import PASSWORD, PROVIDERS, eventually, running, seed_reference
from tests.test_console_browser import CHROMIUM_FLAGS

SHOTS = ROOT / ".local" / "screenshots" / "pages"
METER = "0401000321"
USERS = {"viewer": "vic", "operator": "olga", "admin": "ada", "deployment-admin": "root"}


@pytest.fixture
async def console(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[str]:
    await seed_reference(db)
    await db.execute("INSERT INTO utilities (utility_id, name) VALUES ('u1', 'Utility One')")
    # The institution that runs the deployment, whose admin works dead letters.
    await db.execute("INSERT INTO institutions (institution_id, name, operates_deployment) VALUES ('ops', 'Ops', true)")
    await db.execute(
        "INSERT INTO console_users (institution_id, username, password_hash, role) VALUES ('ops', 'root', $1, 'admin')",
        hash_password(PASSWORD),
    )
    async with running(settings) as system, serving(settings) as (base, _):
        await system.attempt(METER)
        asked = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
        await system.respond(asked["p1"], "supported")
        await system.respond(asked["p2"], "not_supported")
        await eventually(
            lambda: db.fetchval("SELECT count(*) = 1 FROM routing_decisions WHERE meter_number = $1", METER),
            what="the purchase decided",
        )
        await system.publish("purchase_attempts", b"\x00not json", METER)  # a dead letter to inspect
        await eventually(
            lambda: db.fetchval(
                "SELECT sum(greatest(next_offset, 0)) = 2 FROM consumer_offsets WHERE group_id = $1",
                settings.topic_prefix + "ppu-lookup-worker",
            ),
            what="the dead letter written",
        )
        yield base


class Watched:
    """What went wrong in a page: console errors (CSP refusals are reported there), script errors, failed requests."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.allowed_status: dict[str, int] = {}
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: (
                self.problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and self.allowed_status.get(r.url) != r.status
                else None
            ),
        )

    def _console(self, m: ConsoleMessage) -> None:
        expected = self.allowed_status.get(m.location.get("url", ""))
        if m.type == "error" and not (expected and f"status of {expected} " in m.text):
            self.problems.append(f"console {m.type}: {m.text} at {m.location.get('url')}")


async def visit(page: Page, watched: Watched, base: str, path: str, shot: str) -> None:
    await page.goto(f"{base}{path}")
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    assert watched.problems == [], (path, watched.problems)


async def log_in(browser: Browser, base: str, username: str) -> tuple[Page, Watched]:
    page = await browser.new_page()
    watched = Watched(page)
    await page.goto(f"{base}/login")
    await page.fill("input[name=institution]", "ops" if username == "root" else "i1")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Meter Management")
    # Settled before the next navigation: one started earlier aborts this page's requests still in flight.
    await page.wait_for_load_state("networkidle")
    return page, watched


async def test_every_page_for_every_role(console: str) -> None:
    base = console
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is missing: `make test` installs it"
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        # Before logging in: the login page, a refused login that keeps what was typed, and the API's docs.
        page = await browser.new_page()
        watched = Watched(page)
        await visit(page, watched, base, "/login", "login")
        await page.fill("input[name=institution]", "i1")
        await page.fill("input[name=username]", "olga")
        await page.fill("input[name=password]", "wrong password")
        watched.allowed_status[f"{base}/login"] = 401
        await page.click("button[type=submit]")
        await expect(page.locator(".error")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await expect(page.locator("input[name=institution]")).to_have_value("i1")
        await expect(page.locator("input[name=username]")).to_have_value("olga")
        await page.screenshot(path=str(SHOTS / "login-refused.png"))
        await visit(page, watched, base, "/api/docs", "api-docs")
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text("PPU meter lookup console API")
        await expect(page.locator(".opblock").first).to_be_visible()
        await page.screenshot(path=str(SHOTS / "api-docs.png"), full_page=True)
        assert watched.problems == [], watched.problems
        await page.close()

        for role, username in USERS.items():
            page, watched = await log_in(browser, base, username)
            pages = {
                "meters": ("/ppu/meters?q=04010003", "Meters"),
                "meter": (f"/ppu/meters/{METER}", "Meters"),
                "providers": ("/ppu/providers", "Provider health"),
                "routing": ("/ppu/routing", "Routing preferences"),
                "audit": ("/ppu/audit", "Audit log"),
            }
            if role != "viewer":
                pages["bulk-confirm"] = ("/ppu/bulk-confirm", "Bulk Confirm support")
            if role == "deployment-admin":
                pages["dead-letters"] = ("/ppu/dead-letters", "Dead letters")
            for name, (path, active) in pages.items():
                await visit(page, watched, base, path, f"{role}-{name}")
                await expect(page.locator(".sidebar a.active")).to_have_text(active)
                await expect(page.locator(".sidebar button", has_text="Log out")).to_be_visible()
            await expect(page.locator(".sidebar a", has_text="Bulk Confirm support")).to_have_count(
                0 if role == "viewer" else 1
            )
            await expect(page.locator(".sidebar a", has_text="Dead letters")).to_have_count(
                1 if role == "deployment-admin" else 0
            )
            if role == "deployment-admin":
                await page.goto(f"{base}/ppu/dead-letters")
                await page.wait_for_load_state("networkidle")
                await page.locator("#dlq-letters a").first.click()
                await page.wait_for_load_state("networkidle")
                await expect(page.locator("#dlq-hex")).to_contain_text("00000000  00 6e 6f 74")
                await page.screenshot(path=str(SHOTS / "deployment-admin-dead-letter.png"), full_page=True)
                assert watched.problems == [], watched.problems
            # The audit log reads as words with its time zone, not raw action names.
            await visit(page, watched, base, "/ppu/audit", f"{role}-audit")
            await expect(page.locator("table tbody tr", has_text="Logged in").first).to_contain_text("UTC")
            # An unknown meter: an error page that keeps the sidebar and Log out.
            watched.allowed_status[f"{base}/ppu/meters/0409999999"] = 404
            await visit(page, watched, base, "/ppu/meters/0409999999", f"{role}-unknown-meter")
            await expect(page.locator(".error")).to_contain_text("unknown meter")
            await expect(page.locator(".sidebar button", has_text="Log out")).to_be_visible()
            if role == "admin":
                labels = await page.goto(f"{base}/ppu/routing")
                assert labels is not None
                await page.wait_for_load_state("networkidle")
                for field in ("Provider", "Kind", "Rank", "Weight"):
                    await expect(page.locator("form.preference label", has_text=field).first).to_be_visible()
            if role == "operator":
                await page.goto(f"{base}/ppu/bulk-confirm")
                await page.wait_for_load_state("networkidle")
                await page.fill("#bulk-meters", f"{METER}\n0409999999")
                await page.click("#bulk-submit")
                await expect(page.locator(f"#bulk-results tr[data-meter='{METER}'] .outcome")).to_have_text("marked")
                await page.wait_for_load_state("networkidle")
                await expect(page.locator("#bulk-results tr[data-meter='0409999999'] .outcome")).to_have_text("unknown")
                await page.screenshot(path=str(SHOTS / "operator-bulk-confirm-results.png"), full_page=True)
                assert watched.problems == [], watched.problems
            await page.close()
        await browser.close()
    assert len(list(SHOTS.glob("*.png"))) >= 20
