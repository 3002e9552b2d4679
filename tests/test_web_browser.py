"""In a real browser (Debian's chromium, driven by Playwright): log in, search by a partial
number, open a call and play it — the audio element's currentTime advances, the server answered
206, and the access log has the playback.

Needs /usr/bin/chromium (.ci/setup installs it). Playwright's own browser downloads are never
used: its Python wheel ships the driver, and the browser is Debian's.
"""

from __future__ import annotations

import re

from tests.harness.api_world import PASSWORD, World, web_fixture  # noqa: F401 (fixture)
from tests.harness.browser import ARGS, CHROMIUM, NEEDS_CHROMIUM

pytestmark = NEEDS_CHROMIUM


async def test_log_in_search_open_and_play(web: World) -> None:
    from playwright.async_api import async_playwright

    base = str(web.client.make_url("")).rstrip("/")
    audio_statuses: list[int] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page()
            page.on(
                "response",
                lambda r: audio_statuses.append(r.status) if r.url.endswith("/audio") else None,
            )
            await page.goto(f"{base}/calls")
            assert page.url.startswith(f"{base}/login")  # sent to log in first
            await page.get_by_label("User name").fill("intake")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url(f"{base}/calls")

            await page.get_by_label("Phone number (full or part)").fill("555-0100")
            await page.get_by_label("Phone number (full or part)").press("Enter")
            await page.wait_for_url(re.compile(r".*number=555-0100.*"))
            rows = page.locator("table.calls tbody tr")
            assert await rows.count() == 1
            await rows.first.get_by_role("link").click()
            await page.wait_for_url(re.compile(rf".*/calls/{web.calls['A']}\?back=.*"))

            audio = page.locator("audio").first
            await audio.focus()  # keyboard, as a person without a mouse would
            await page.keyboard.press("Space")
            # Polled from here: the page's CSP (no eval) rules out wait_for_function.
            position = 0.0
            for _ in range(150):
                position = await audio.evaluate("a => a.currentTime")
                if position > 0.5:
                    break
                await page.wait_for_timeout(100)
            assert position > 0.5, f"currentTime stayed at {position}"
        finally:
            await browser.close()
    assert 206 in audio_statuses, audio_statuses
    plays = [r for r in await web.access_rows() if r["action"] == "play"]
    assert len(plays) == 1, plays
    assert plays[0]["user_name"] == "intake" and plays[0]["via"] == "session"
    # the first player is the whole call's: one stream of its recordings, one row
    assert plays[0]["recording_name"] is None and plays[0]["detail"]["whole_call"] is True
    # (the seeded segments claim the same seconds: each instant is played from one file)
    assert plays[0]["detail"]["recordings"] == [web.rec("A", 1)]
    assert [r["action"] for r in await web.access_rows()] == ["search", "search", "view", "play"]
