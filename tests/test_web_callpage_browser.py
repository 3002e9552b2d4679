"""The call page and the search page in a real browser (Debian's chromium, Playwright), on real
calls from the simulator: the timeline's lanes, transfer, gap and pause as a person sees them,
the whole-call playback moving the timeline's cursor, and axe-core finding no serious or
critical accessibility violation. Screenshots are kept in .artifacts/web/ (git-ignored) for a
person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.harness.browser import ARGS, CHROMIUM, NEEDS_CHROMIUM
from tests.harness.callpage_calls import call_world

pytestmark = NEEDS_CHROMIUM

ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "web"


async def _axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (axe-playwright-python)."""
    from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]

    results = await Axe().run(page)
    assert len(results.response["passes"]) > 10  # axe ran its rules on the page
    return [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_call_pages_in_a_browser(pg_dsn: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with call_world(tmp_path, pg_dsn) as w:
        base = str(w.client.make_url("")).rstrip("/")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                context = await browser.new_context(
                    extra_http_headers=w.auth("intake"), viewport={"width": 1200, "height": 900})
                page = await context.new_page()

                await page.goto(f"{base}/calls")
                await _shot(page, "search")
                assert await _axe(page) == []

                await page.goto(f"{base}/calls/{w.calls['transferred']}")
                lanes = page.locator("svg#timeline g.lane")
                assert await lanes.count() == 3
                assert await lanes.locator(".lane-label").all_text_contents() == [
                    "Caller +14155550100", "201", "300 (transfer target)"]
                arrow = page.locator("svg#timeline line.arrow")
                box = await arrow.bounding_box()  # from 201's lane down to 300's
                assert await arrow.count() == 1 and box is not None and box["height"] > 40
                said = await arrow.locator("title").text_content() or ""
                assert "Transferred by 201 to 300" in said
                await _shot(page, "call-transferred")
                assert await _axe(page) == []

                await page.goto(f"{base}/calls/{w.calls['restarted']}")
                gaps = page.locator("svg#timeline g.lane rect.bar-gap")
                assert await gaps.count() == 2 and await gaps.first.is_visible()
                colour = await gaps.first.evaluate("r => getComputedStyle(r).fill")
                assert colour == "rgb(200, 16, 46)"  # red
                title = await gaps.first.locator("title").text_content() or ""
                assert "segment 1 failed (disk full)" in title, title
                await _shot(page, "call-restarted")

                await page.goto(f"{base}/calls/{w.calls['paused']}")
                assert await page.locator("svg#timeline rect.bar-paused").count() == 2
                assert await page.locator("svg#timeline g.lane rect.bar-gap").count() == 0
                await _shot(page, "call-paused")

                await page.goto(f"{base}/calls/{w.calls['hook']}")
                audio = page.locator("audio#whole-call")
                cursor = page.locator("line#cursor")
                start_x = float(await cursor.get_attribute("x1") or 0)
                await audio.focus()
                await page.keyboard.press("Space")
                moved = start_x
                for _ in range(100):
                    moved = float(await cursor.get_attribute("x1") or 0)
                    if moved > start_x + 5:
                        break
                    await page.wait_for_timeout(100)
                assert moved > start_x + 5, (start_x, moved)
                assert await audio.evaluate("a => a.duration") == 8.0  # the caller's file
                await audio.evaluate("a => a.pause()")
                await _shot(page, "call-hook")
                assert await _axe(page) == []
            finally:
                await browser.close()
