"""The user guide, in a real browser (Debian's Chromium driven by Playwright): look up a meter, Confirm support,
then watch the rebroadcast clear the flag after the customer's next purchase attempt."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Page, async_playwright, expect

from kernel.settings import Settings
from tests.conftest import ROOT
from tests.console_server import serving
from tests.harness import PASSWORD, PROVIDERS, System, eventually, running, seed_reference

SHOTS = ROOT / ".local" / "screenshots"
METER = "0401000007"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def stack(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[tuple[System, str]]:
    await seed_reference(db)
    s = settings.model_copy(update={"round_deadline_seconds": 2.0})
    async with running(s) as system, serving(s) as (base, _secret):
        yield system, base


async def statuses(page: Page) -> dict[str, str]:
    cells = await page.locator("#providers tbody tr").all()
    return {
        await r.get_attribute("data-provider") or "": (await r.locator(".status").inner_text()).strip() for r in cells
    }


async def test_operator_confirms_support_and_sees_the_rebroadcast_land(
    stack: tuple[System, str], db: asyncpg.Connection
) -> None:
    system, base = stack
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is missing: `make test` installs it"
    # A meter that nobody supported: blocked at its first purchase attempt.
    await system.attempt(METER)
    first = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
    for p in PROVIDERS:
        await system.respond(first[p], "not_supported")
    await eventually(lambda: db.fetchval("SELECT blocked FROM meters WHERE meter_number = $1", METER), what="blocked")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = await browser.new_page()
        await page.goto(f"{base}/login")
        await page.fill("input[name=institution]", "i1")
        await page.fill("input[name=username]", "olga")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Meter Management")

        await page.locator("#meter-search").press_sequentially("04010000", delay=30)
        suggestion = page.locator("#suggestions li", has_text=METER)
        await expect(suggestion).to_be_visible()
        await page.screenshot(path=str(SHOTS / "1-search.png"))
        await page.locator("#meter-search").press("ArrowDown")
        await page.locator("#meter-search").press("Enter")
        await expect(page.locator("#meter-number")).to_have_text(METER)
        await expect(page.locator("#blocked")).to_have_text("Yes")
        assert await statuses(page) == {p: "Not Supported" for p in PROVIDERS}
        await page.screenshot(path=str(SHOTS / "2-meter-blocked.png"))

        await page.click("#confirm-support")
        await expect(page.locator("#rebroadcast-message")).to_contain_text("marked for rebroadcast (support re-check)")
        await expect(page.locator("#confirm-support")).to_have_count(0)
        assert await statuses(page) == {p: "Unconfirmed" for p in PROVIDERS}
        await page.screenshot(path=str(SHOTS / "3-marked.png"))

        # The customer tries again: the meter is rebroadcast to every provider; p2 now supports it.
        await system.attempt(METER)
        again = {p: (await system.requests(p, 1))[0] for p in PROVIDERS}
        assert {r.data.reason for r in again.values()} == {"rebroadcast"}
        await system.respond(again["p2"], "supported")
        await eventually(
            lambda: db.fetchval("SELECT NOT EXISTS (SELECT 1 FROM rebroadcast_marks WHERE meter_number = $1)", METER),
            what="the flag to clear",
        )
        await page.reload()
        await expect(page.locator("#rebroadcast-message")).to_have_count(0)
        await expect(page.locator("#blocked")).to_have_text("No")
        row = page.locator("#providers tr[data-provider=p2]")
        await expect(row.locator(".status")).to_have_text("Supported")
        await expect(row.locator(".last-response")).to_have_text(re.compile(r"^\d+ s ago$"))
        assert await row.locator(".last-response").get_attribute("title"), "exact time on hover"
        await expect(page.locator("#providers tr[data-provider=p3] .last-response")).to_have_text(
            "Awaiting confirmation"
        )
        await page.screenshot(path=str(SHOTS / "4-rebroadcast-answered.png"))
        await browser.close()
    assert Path(SHOTS / "4-rebroadcast-answered.png").stat().st_size > 0
