"""A real browser (Debian's chromium, driven by Playwright) uses the page as a person would:
type a prompt, press Generate, watch characters appear and heatmaps render, scrub a step."""

import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from test_app import start_app, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]


TEXT_JS = "() => Array.from(document.querySelectorAll('#gpt40k-output .token .text')).map(e => e.textContent).join('')"


def output_text(page) -> str:
    """The characters shown: one token per character."""
    return page.evaluate(TEXT_JS)


def test_type_generate_watch_and_scrub(trained_run, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    model = os.environ.get("GPT40K_BROWSER_MODEL", str(trained_run))
    proc, url = start_app("--model", model)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            # Only the app itself may be reached: anything else is refused before it leaves the machine,
            # and noted: the page must not need anything from outside its own server.
            outside = []

            def only_loopback(route):
                if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()

            page.route("**/*", only_loopback)
            page.goto(url)
            page.locator("#gpt40k-prompt textarea").fill("The emperor")
            page.get_by_label("Speed (characters/s, 0 = fastest)").first.fill("40")
            page.get_by_label("New characters").first.fill("160")
            page.locator("#gpt40k-generate").click()

            lengths = []
            deadline = time.time() + 120
            while time.time() < deadline and page.locator("#gpt40k-step input[type=number]").is_disabled():
                lengths.append(len(output_text(page)))
                time.sleep(0.5)
            assert len(set(lengths)) >= 3, lengths  # it grew while we watched, one character after another
            # the page shows exactly what the API writes for the same request (newlines are line breaks there)
            from gradio_client import Client
            expected = Client(url, verbose=False, analytics_enabled=False, download_files=False).predict(
                "The emperor", 160, 0.8, 0, 1.0, 0, api_name="/generate")
            assert output_text(page) == expected.replace("\n", "")

            heat = page.locator("#gpt40k-heatmap img")
            heat.wait_for(state="visible", timeout=30_000)
            page.wait_for_function("() => { const i = document.querySelector('#gpt40k-heatmap img');"
                                   " return i && i.naturalWidth > 300; }", timeout=30_000)
            assert page.locator("#gpt40k-probs").inner_text().count("sampled") == 1

            # scrub back to step 120: the text shows only the prompt and the first 120 characters
            step_box = page.locator("#gpt40k-step input[type=number]")
            step_box.fill("120")
            step_box.press("Enter")
            page.wait_for_function(f"n => ({TEXT_JS})().length <= n", arg=len("The emperor") + 120, timeout=30_000)
            assert expected.replace("\n", "").startswith(output_text(page))

            # clicking a character shows what each head looked at while reading it
            page.locator("#gpt40k-output .token .text").nth(len("The emperor") + 100).click()
            page.wait_for_function("() => document.querySelector('#gpt40k-attention-text').innerText"
                                   ".includes('What each head looked at')", timeout=30_000)
            assert page.locator("#gpt40k-attention-text .gpt40k-head").count() >= 2

            page.wait_for_timeout(1500)  # let the last redraw land before the picture
            shot = Path(os.environ.get("GPT40K_SCREENSHOT", tmp_path / "page.png"))
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000

            # Stop ends the generation at once and keeps what was written
            page.get_by_label("Speed (characters/s, 0 = fastest)").first.fill("10")
            page.get_by_label("New characters").first.fill("500")
            page.locator("#gpt40k-prompt textarea").fill("The guard")
            page.locator("#gpt40k-generate").click()
            page.wait_for_function(f"() => ({TEXT_JS})().startsWith('The guard') && ({TEXT_JS})().length > 15",
                                   timeout=30_000)
            page.locator("#gpt40k-stop").click()
            page.wait_for_timeout(1500)
            kept = output_text(page)
            page.wait_for_timeout(1500)
            assert output_text(page) == kept and kept.startswith("The guard")
            assert 15 < len(kept) < len("The guard") + 100  # stopped early, and what was written stays

            browser.close()
            assert outside == [], outside
    finally:
        stop(proc)
