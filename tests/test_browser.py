"""A real browser (Debian's chromium, driven by Playwright) uses the page as a person would:
type a prompt, press Generate, watch the text grow, hover it, switch heads, scrub, branch, stop."""

import hashlib
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from test_app import start_app, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]
LIVE = "#gpt40k-live"
SHOWN_JS = f"() => Array.from(document.querySelectorAll('{LIVE} .g4k-text span[data-pos]:not(.hidden)')).map(s => s.textContent).join('')"
SHOWN_LEN_JS = f"document.querySelectorAll('{LIVE} .g4k-text span[data-pos]:not(.hidden)').length"  # characters
DONE_JS = f"() => document.querySelector('{LIVE} .g4k').dataset.state === 'idle'"  # written and shown
# Words in the settings (labels, a slider's ends) that stick out of their component's box, cut off there
CLIPPED_JS = """() => [...document.querySelectorAll('#gpt40k-settings .block')].flatMap(block => {
  const box = block.getBoundingClientRect();
  return [...block.querySelectorAll('span')].filter(s => s.children.length === 0 && s.textContent.trim())
    .filter(s => { const r = s.getBoundingClientRect(); return r.left < box.left - 1 || r.right > box.right + 1; })
    .map(s => s.textContent.trim());
})"""
BIG_HASH_JS = f"() => document.querySelector('{LIVE} .g4k-bigcanvas').toDataURL()"


def shown(page) -> str:
    return page.evaluate(SHOWN_JS)


def big_map(page) -> str:
    return hashlib.sha1(page.evaluate(BIG_HASH_JS).encode()).hexdigest()


def step_info(page) -> str:
    return page.inner_text(f"{LIVE} .g4k-stepinfo")


def settle(page) -> None:
    """Wait for the page to draw what it was told (it draws on the next animation frame)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


@pytest.fixture(scope="module")
def app_url(trained_run):
    """One app for this file's tests (each gets a browser of its own): starting one takes seconds."""
    pytest.importorskip("playwright.sync_api")
    proc, url = start_app("--model", os.environ.get("GPT40K_BROWSER_MODEL", str(trained_run)))
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture
def page_on(app_url):
    """(page, url, outside requests, console errors) of a fresh browser on the app."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        outside, errors = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def only_loopback(route):  # the page must need nothing from outside its own server
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                return route.continue_()
            outside.append(route.request.url)
            return route.abort()

        page.route("**/*", only_loopback)
        page.goto(app_url)
        page.wait_for_selector("#gpt40k-generate")
        yield page, app_url, outside, errors
        browser.close()


def generate(page, prompt: str, chars: int, pace: str = "35"):
    page.locator("#gpt40k-prompt textarea").fill(prompt)
    page.get_by_text("Settings:", exact=False).first.click()
    box = page.locator("#gpt40k-max-new input")
    box.click()  # as a person types: fill() right after the accordion opens can race the box's set-up
    box.press("Control+a")
    box.type(str(chars))
    box.press("Tab")  # a number box sends its value when it loses focus
    page.wait_for_function("([el, n]) => el.value === n && document.activeElement !== el",
                           arg=[box.element_handle(), str(chars)])
    page.locator(f"{LIVE} .g4k-pace").select_option(pace)
    page.locator("#gpt40k-generate").click()


def test_watch_it_write_then_read_its_attention(page_on, tmp_path):
    page, url, outside, errors = page_on
    generate(page, "The emperor", 160)
    assert page.evaluate(CLIPPED_JS) == []
    lengths = [len(shown(page))]
    while len(lengths) < 5 and lengths[-1] < len("The emperor") + 160:  # each time, wait until more is shown
        page.wait_for_function(f"() => ({SHOWN_LEN_JS}) > {lengths[-1]}", timeout=30_000)
        lengths.append(len(shown(page)))
    assert len(lengths) == 5 and lengths[-1] < len("The emperor") + 160, lengths  # it grew while we watched
    page.wait_for_function(DONE_JS, timeout=30_000)
    from gradio_client import Client

    api = Client(url, verbose=False, analytics_enabled=False, download_files=False).predict(
        "The emperor", 160, 0.8, 0, 1.0, 0, api_name="/generate")
    assert shown(page) == api["text"]  # the page shows exactly what the API writes for the same request
    assert "160 / 160" in step_info(page)

    # hovering a written character highlights what it attended to, on the text and in the map
    before = big_map(page)
    page.locator(f"{LIVE} .g4k-text span.g").nth(100).hover()
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-hoverinfo').innerText.startsWith('Reading')")
    assert page.locator(f"{LIVE} .g4k-text span.att").count() >= 2
    assert page.locator(f"{LIVE} .g4k-text span.hov").count() == 1
    page.mouse.move(5, 5)
    settle(page)
    before = big_map(page)

    # another head redraws the map in the browser (no server round trip needed)
    thumb = page.locator(f"{LIVE} .g4k-overview canvas[data-layer='1'][data-head='0']")
    thumb.click()
    settle(page)
    assert page.inner_text(f"{LIVE} .g4k-sel") == "layer 2 · head 1" and big_map(page) != before

    # scrubbing with the arrow keys takes the text, the map and the choice back a step at a time
    page.locator(f"{LIVE} .g4k").focus()
    map_now, text_now = big_map(page), shown(page)
    for _ in range(20):
        page.keyboard.press("ArrowLeft")
    settle(page)
    assert "140 / 160" in step_info(page) and shown(page) == text_now[:-20] and big_map(page) != map_now
    assert page.inner_text(f"{LIVE} .g4k-probs-title").startswith("Step 140: the model wrote")

    # a click on another candidate forces it there and continues from it
    kept = shown(page)[:-1]
    candidate = page.locator(f"{LIVE} .g4k-cand:not(.chosen)").first
    forced = candidate.locator(".ch").inner_text().strip()
    candidate.click()
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-text span.f')", timeout=30_000)
    page.wait_for_function(DONE_JS, timeout=30_000)
    text = shown(page)
    assert text.startswith(kept) and len(text) == len(kept) + 1 + 160
    assert page.inner_text(f"{LIVE} .g4k-text span.f") in (forced, {"␣": " ", "⏎": "\n"}.get(forced))

    shot = Path(os.environ.get("GPT40K_SCREENSHOT", tmp_path / "page.png"))
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert outside == [] and errors == [], (outside, errors)


def test_stop_freezes_at_once_and_notes_explain_changes(page_on):
    """The server writes faster than the page shows: Stop freezes what is shown, wherever the server is."""
    page, _, outside, errors = page_on
    page.set_viewport_size({"width": 390, "height": 844})  # a phone, where the first prompt takes two lines
    prompt_box = "document.querySelector('#gpt40k-prompt textarea')"
    page.wait_for_function(f"() => {prompt_box}.scrollHeight <= {prompt_box}.clientHeight",  # all of it in view
                           timeout=5_000)
    page.set_viewport_size({"width": 1440, "height": 900})
    generate(page, "The guard 🙂", 1500, pace="10")
    page.wait_for_function(f"() => ({SHOWN_JS})().length > 20", timeout=30_000)
    page.locator("#gpt40k-stop").click()
    kept = shown(page)
    # Stop re-enables Generate once the server's run is cancelled: by then nothing more may have been shown
    page.wait_for_function("() => !document.querySelector('#gpt40k-generate').disabled", timeout=10_000)
    assert shown(page) == kept and len(kept) < 60  # nothing more after Stop
    notes = page.inner_text(f"{LIVE} .g4k-notes")
    assert "Removed 1 character" in notes and "🙂" in notes and "Stopped after" in notes
    page.wait_for_function("() => !document.querySelector('#gpt40k-generate').disabled", timeout=10_000)
    assert outside == [] and errors == [], (outside, errors)


def test_knock_a_head_out_read_the_lens_and_the_roles(page_on, tmp_path):
    """Issue 26's views: badges on the grid, the lens following the slider, the heads' pushes, a
    knock-out written beside the original with the fork marked, and the Model tab's role table."""
    page, _, outside, errors = page_on
    generate(page, "The emperor", 120, pace="0")
    page.wait_for_function(DONE_JS, timeout=60_000)
    heads = page.locator(f"{LIVE} .g4k-overview .head:not([data-head='-1']) .badge")
    assert heads.count() >= 4 and all(re.match(r"^(prev|self|word|copy|line|punc|wide) (\.\d\d|1\.00)$", t)
                                                for t in heads.all_inner_texts())

    # the lens: one row per layer and the embedding, the written character marked; it follows the slider
    lens = f"{LIVE} .g4k-lens"
    rows = page.locator(f"{lens} tr")
    assert rows.count() >= 3 and rows.first.inner_text().startswith("embedding")
    assert "(output)" in rows.last.inner_text() and page.locator(f"{lens} td.written").count() >= 1
    assert page.get_attribute(lens, "data-step") == "120"
    page.locator(f"{LIVE} .g4k").focus()
    for _ in range(7):
        page.keyboard.press("ArrowLeft")
    settle(page)
    assert page.get_attribute(lens, "data-step") == "113"
    assert page.locator(f"{LIVE} .g4k-dla span.push").count() >= 4 and page.get_attribute(f"{LIVE} .g4k-dla",
                                                                                         "data-step") == "113"
    page.keyboard.press("Shift+ArrowRight")  # back to the end
    settle(page)

    # knock out layer 1, head 1: the same request again, beside the original, the fork marked
    page.locator(f"{LIVE} .g4k-overview canvas[data-layer='0'][data-head='0']").click()
    page.locator(f"{LIVE} .g4k-knock-add").click()
    settle(page)
    assert page.inner_text(f"{LIVE} .g4k-knocked") == "L1H1"
    assert "knocked" in page.get_attribute(f"{LIVE} .g4k-overview .head[data-layer='0'][data-head='0']", "class")
    before = shown(page)
    page.locator(f"{LIVE} .g4k-knock-run").click()
    page.wait_for_function(f"() => !document.querySelector('{LIVE} .g4k-versus').hidden", timeout=30_000)
    page.wait_for_function(DONE_JS, timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-versus-title').innerText.includes('nats/char')",
                           timeout=30_000)
    title = page.inner_text(f"{LIVE} .g4k-versus-title")
    assert page.inner_text(f"{LIVE} .g4k-versus-a") == before  # the original, kept as it was
    assert page.inner_text(f"{LIVE} .g4k-versus-b") == shown(page)
    assert page.inner_text(f"{LIVE} .g4k-versus-bhead") == "Without L1H1"
    fork = int(page.get_attribute(f"{LIVE} .g4k-versus", "data-fork"))
    if fork >= 0:
        assert title.startswith(f"They part at step {fork + 1}")
        assert page.locator(f"{LIVE} .g4k-versus .fork").count() == 2
    assert re.search(r"On 1,000 characters of the model's own writing: \d\.\d\d → \d\.\d\d nats/char", title)
    assert "Knocked out 1 of" in page.inner_text(f"{LIVE} .g4k-notes")

    # the Model tab: every head's roles
    page.get_by_role("tab", name="Model").click()
    table = page.locator("#gpt40k-roles table")
    table.wait_for(timeout=10_000)
    assert table.locator("tr").count() >= 5 and "prev char" in table.inner_text()
    page.get_by_role("tab", name="Write").click()
    page.screenshot(path=str(Path(os.environ.get("GPT40K_SCREENSHOT_DIR", tmp_path)) / "knockout.png"), full_page=True)
    assert outside == [] and errors == [], (outside, errors)
