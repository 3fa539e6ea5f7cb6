"""A real browser (Debian's chromium, driven by Playwright) uses the page as a person would:
type a prompt, press Generate, watch the text grow, hover it, switch heads, scrub, branch, stop;
read it by keyboard and on a phone, share it by link, keep it as a picture and a file."""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

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
def new_pages(app_url):
    """(open, outside requests, console errors): ``open()`` gives a fresh page of one browser, each
    guarded and listened to alike, as a person opens a shared link in a new tab."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        outside, errors = [], []

        def only_loopback(route):  # the page must need nothing from outside its own server
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                return route.continue_()
            outside.append(route.request.url)
            return route.abort()

        def open_page():
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", only_loopback)
            return page

        yield open_page, outside, errors
        browser.close()


@pytest.fixture
def blank_page(new_pages):
    """(page, outside requests, console errors) of a fresh browser, before it opens the app."""
    open_page, outside, errors = new_pages
    return open_page(), outside, errors


@pytest.fixture
def page_on(app_url, blank_page):
    """(page, url, outside requests, console errors) of a fresh browser on the app."""
    page, outside, errors = blank_page
    page.goto(app_url)
    page.wait_for_selector("#gpt40k-generate")
    return page, app_url, outside, errors


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
    before = run_id(page)
    page.locator("#gpt40k-generate").click()
    wait_for_new_run(page, before)


def run_id(page, view: str = LIVE) -> str:
    return page.get_attribute(f"{view} .g4k", "data-run")


def wait_for_new_run(page, before: str, view: str = LIVE) -> None:
    """Until a run other than ``before`` is on the view (and not the example, which may come late)."""
    page.wait_for_function(f"(r) => !['example', r].includes(document.querySelector('{view} .g4k').dataset.run)",
                           arg=before, timeout=30_000)


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


def test_the_example_never_replaces_a_run_the_visitor_started(app_url, blank_page):
    """The example is sent when the page has loaded; on a slow link or a busy server it can come after
    the visitor pressed Generate. It then stays away: the visitor's run is the one on the view."""
    page, outside, errors = blank_page
    held = []  # the page's first queued request: the one that brings the example

    def hold_the_first(route):
        if held:
            return route.fallback()
        held.append(route)

    page.route("**/queue/join*", hold_the_first)
    page.goto(app_url)
    page.wait_for_selector("#gpt40k-generate")
    page.wait_for_function("() => document.querySelector('#gpt40k-generate').offsetParent !== null")
    page.wait_for_timeout(3000)  # the page's load events: the example's request is sent, and held
    generate(page, "The emperor", 160, pace="0")
    assert held and json.loads(held[0].request.post_data)["data"][0] is None  # it was the example's
    page.wait_for_function(DONE_JS, timeout=30_000)
    mine = shown(page)
    assert mine.startswith("The emperor") and run_id(page) != "example"
    held[0].fallback()  # now the example arrives
    page.wait_for_timeout(1500)
    settle(page)
    assert shown(page) == mine and run_id(page) != "example"
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
    # while the server writes: Generate says so, and no spinner covers the prompt or the view
    assert page.inner_text("#gpt40k-generate") == "Writing…" and page.locator("#gpt40k-generate").is_disabled()
    assert page.evaluate(SPINNERS_JS) == []
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


# Each visible character's contrast with what is behind it (its own shade over the text's background),
# as WCAG computes it; with its text, whether it is underlined as attended, and the line's thickness.
CONTRAST_JS = """() => {
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const parse = (s) => s.match(/[\\d.]+/g).map(Number);
  const pane = parse(getComputedStyle(document.querySelector('LIVE .g4k-text')).backgroundColor);
  return [...document.querySelectorAll('LIVE .g4k-text span[data-pos]:not(.hidden)')].map((s) => {
    const st = getComputedStyle(s), bg = parse(st.backgroundColor);
    const fg = parse(getComputedStyle(s, s.classList.contains('nl') ? '::before' : null).color);  // a line break's mark
    const a = bg.length > 3 ? bg[3] : 1, behind = [0, 1, 2].map((i) => a * bg[i] + (1 - a) * pane[i]);
    const [hi, lo] = [lum(fg), lum(behind)].sort((x, y) => y - x);
    return [(hi + 0.05) / (lo + 0.05), s.textContent, s.classList.contains('att'),
            st.textDecorationLine.includes('underline') ? parseFloat(st.textDecorationThickness) : 0];
  });
}""".replace("LIVE", LIVE)
# Gradio's progress marks (a spinner, "processing", a time bar), each named by the block that shows it
SPINNERS_JS = """() => [...document.querySelectorAll('.generating, .progress-text, .eta-bar')].map(el =>
    `${el.closest('[id]')?.id || '?'}: ${el.className}`)"""
# The font size of every piece of text in the view (px), and the big map's labels'
SMALLEST_TEXT_JS = f"""() => Math.min(document.querySelector('{LIVE} .g4k-bigcanvas').dataset.font,
  ...[...document.querySelectorAll('{LIVE} .g4k *')].filter((el) => el.offsetParent !== null &&
     [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
    .map((el) => parseFloat(getComputedStyle(el).fontSize)))"""
FOCUS_RING_JS = """() => { const st = getComputedStyle(document.activeElement);
  return st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2; }"""
AXE_JS = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
  .filter((v) => v.impact === 'serious' || v.impact === 'critical')
  .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.html.slice(0, 80)).join(' | ')}`)"""


def axe_script() -> str:
    import axe_playwright_python  # requirements-dev.txt: axe-core's own axe.min.js, nothing downloaded

    return str(Path(axe_playwright_python.__file__).with_name("axe.min.js"))


def in_view(page, selector: str) -> bool:
    return page.evaluate("(sel) => { const r = document.querySelector(sel).getBoundingClientRect();"
                         " return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight; }", selector)


def test_it_reads_at_a_glance_and_by_keyboard(page_on):
    """Issue 27: an example before the first run, a legend, attention that hides no character, labels
    of 12 px, focus always visible, the arrow keys in the text and the grid, axe's serious checks."""
    page, _, outside, errors = page_on
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k').dataset.run === 'example'")
    page.wait_for_function(DONE_JS)
    assert len(shown(page)) > 100  # not an empty view before the first run
    assert page.locator(f"{LIVE} .g4k-cand").count() >= 2 and page.locator(f"{LIVE} .g4k-overview canvas").count() >= 4
    legend = page.inner_text(f"{LIVE} .g4k-legend")
    assert all(w in legend for w in ("your prompt", "the model's text", "surprise", "forced", "a line break", "attended"))
    assert in_view(page, f"{LIVE} .g4k-legend")
    styles = page.evaluate(f"() => ['p', 'g'].map((k) => getComputedStyle(document.querySelector("
                           f"'{LIVE} .g4k-text span.' + k)).fontStyle)")
    assert styles == ["italic", "normal"]  # the prompt is told apart by its shape, not only its colour

    # a head that looks at the character before: hovering underlines it, and every character stays readable
    badges = page.locator(f"{LIVE} .g4k-overview .head .badge").all_inner_texts()
    k = next((i for i, b in enumerate(badges) if b.startswith("prev")), 0)
    page.locator(f"{LIVE} .g4k-overview .head").nth(k).locator("canvas").click()
    underlined_space = False
    chars = page.locator(f"{LIVE} .g4k-text span[data-pos]")
    texts = chars.all_inner_texts()
    line_break = texts.index("\n", 20)  # it has a mark to hover, as every character has an area
    for n in (40, 41, 55, 56, 70, 71, 90, 91, line_break):
        chars.nth(n).hover()
        settle(page)
        cells = page.evaluate(CONTRAST_JS)
        assert min(c[0] for c in cells) >= 4.5, min(cells)
        attended = [c for c in cells if c[2]]
        assert attended and all(c[3] >= 1 for c in attended)
        underlined_space |= any(c[1] == " " for c in attended)
    assert underlined_space  # an attended space shows: its line
    assert page.inner_text(f"{LIVE} .g4k-hoverinfo").startswith(f"Reading ‘⏎’ (character {line_break + 1})")
    page.locator(f"{LIVE} .g4k-surprise").click()
    assert min(c[0] for c in page.evaluate(CONTRAST_JS)) >= 4.5
    page.locator(f"{LIVE} .g4k-surprise").click()
    assert page.evaluate(SMALLEST_TEXT_JS) >= 12

    # the keyboard: Enter writes and brings focus to the text; the arrow keys move through it
    prompt = page.locator("#gpt40k-prompt textarea")
    prompt.fill("The walls")
    before = run_id(page)
    prompt.press("Enter")
    wait_for_new_run(page, before)
    page.wait_for_function(f"() => document.activeElement === document.querySelector('{LIVE} .g4k-text')")
    page.wait_for_function(DONE_JS, timeout=60_000)
    assert page.evaluate(FOCUS_RING_JS)
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    settle(page)
    assert page.inner_text(f"{LIVE} .g4k-hoverinfo").startswith("Reading")
    total = len(shown(page))
    assert page.get_attribute(f"{LIVE} .g4k-text span.hov", "data-pos") == str(total - 3)  # from the end, 2 back
    # the grid: one tab stop, the arrow keys choose the head the map shows
    page.locator(f"{LIVE} .g4k-overview canvas[tabindex='0']").focus()
    assert page.locator(f"{LIVE} .g4k-overview canvas[tabindex='0']").count() == 1 and page.evaluate(FOCUS_RING_JS)
    page.keyboard.press("Home")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    settle(page)
    assert page.inner_text(f"{LIVE} .g4k-sel") == "layer 2 · head 2"
    assert page.evaluate("() => [document.activeElement.dataset.layer, document.activeElement.dataset.head,"
                         " document.activeElement.getAttribute('aria-checked')]") == ["1", "1", "true"]
    assert page.input_value(f"{LIVE} .g4k-headsel") == "1:1"
    page.get_by_text("Settings:", exact=False).first.click()  # axe reads what is shown: the settings too
    page.locator("#gpt40k-seed input").wait_for()
    page.add_script_tag(path=axe_script())
    assert page.evaluate(AXE_JS) == []
    page.get_by_role("tab", name="Model").click()
    page.locator("#gpt40k-card table").first.wait_for()
    assert page.evaluate(AXE_JS) == []
    assert outside == [] and errors == [], (outside, errors)


def test_on_a_phone_the_text_the_map_and_the_choice_are_in_view_together(page_on, tmp_path):
    page, _, outside, errors = page_on
    page.set_viewport_size({"width": 390, "height": 844})
    generate(page, "The emperor", 600, pace="10")
    page.wait_for_function(f"() => ({SHOWN_JS})().length > 30", timeout=30_000)
    settle(page)
    page.screenshot(path=str(Path(os.environ.get("GPT40K_SCREENSHOT_DIR", tmp_path)) / "phone.png"))
    assert page.get_attribute(f"{LIVE} .g4k", "data-state") in ("streaming", "playing")  # while it writes
    assert in_view(page, f"{LIVE} .g4k-text") and in_view(page, f"{LIVE} .g4k-bigcanvas")
    assert in_view(page, f"{LIVE} .g4k-cand")  # the first candidate, whole
    assert page.evaluate(SMALLEST_TEXT_JS) >= 12
    assert page.evaluate(SPINNERS_JS) == []  # no spinner
    page.locator(f"{LIVE} .g4k-to-grid").click()  # every head: one tap away
    page.wait_for_function(f"() => {{ const r = document.querySelector('{LIVE} .g4k-overview').getBoundingClientRect();"
                           " return r.top >= 0 && r.top < innerHeight; }")
    page.locator("#gpt40k-stop").click()
    assert outside == [] and errors == [], (outside, errors)


# The run a link asked for, written and shown (not the example the page starts with)
LINK_WRITTEN_JS = f"""() => {{ const v = document.querySelector('{LIVE} .g4k');
  return Boolean(v && v.dataset.run && v.dataset.run !== 'example' && v.dataset.state === 'idle'); }}"""


def api_text(url, prompt, chars, temperature, top_k, top_p, seed, knock_out=""):
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    return client.predict(prompt, chars, temperature, top_k, top_p, seed, knock_out, api_name="/generate")["text"]


def test_a_link_writes_the_run_again_and_a_run_is_kept_as_a_picture_and_a_file(app_url, new_pages, tmp_path):
    """Issue 27: the address holds the run (prompt, settings, forced characters, knocked-out heads);
    Copy link; a branch beside its original, and Undo; the map as a PNG; the run as JSON, loaded back.
    Each link opens in a new tab, as a person opens a shared link."""
    open_page, outside, errors = new_pages
    settings = {"prompt": "The walls", "chars": 90, "temperature": 0.9, "top_k": 30, "top_p": 0.95, "seed": 5}
    page = open_page()
    page.goto(f"{app_url}?{urlencode(settings)}")
    page.wait_for_function(LINK_WRITTEN_JS, timeout=60_000)
    written = api_text(app_url, *settings.values())
    assert shown(page) == written, page.inner_text(f"{LIVE} .g4k-notes")  # what the API writes, the same arguments
    assert page.input_value("#gpt40k-prompt textarea") == "The walls"
    page.get_by_text("Settings:", exact=False).first.click()
    assert page.input_value("#gpt40k-seed input") == "5" and page.input_value("#gpt40k-max-new input") == "90"

    # Copy link: the run's own address
    page.locator(f"{LIVE} .g4k-copy-link").click()
    page.locator(f"{LIVE} .g4k-keep-info input").wait_for()
    link = page.locator(f"{LIVE} .g4k-keep-info input").input_value()
    assert {k: v[0] for k, v in parse_qs(urlparse(link).query).items()} == {
        **{k: str(v) for k, v in settings.items()}, "top_p": "0.95", "model": page.input_value("#gpt40k-model input")}

    # force a character at step 40: both texts shown, the fork marked; Undo goes back
    page.locator(f"{LIVE} .g4k").focus()
    page.keyboard.press("Shift+ArrowLeft")  # 50 ... back to step 40
    for _ in range(4):
        page.keyboard.press("Shift+ArrowLeft")
    settle(page)
    assert "40 / 90" in step_info(page)
    page.locator(f"{LIVE} .g4k-cand:not(.chosen)").first.click()
    page.wait_for_function(f"() => !document.querySelector('{LIVE} .g4k-versus').hidden", timeout=30_000)
    page.wait_for_function(DONE_JS, timeout=60_000)
    branched = shown(page)
    assert page.inner_text(f"{LIVE} .g4k-versus-a") == written and branched != written
    assert page.inner_text(f"{LIVE} .g4k-versus-bhead").endswith("forced at step 40")
    assert page.locator(f"{LIVE} .g4k-text span.f").count() == 1
    page.locator(f"{LIVE} .g4k-copy-link").click()
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-keep-info input').value.includes('force=')")
    forced_link = page.locator(f"{LIVE} .g4k-keep-info input").input_value()
    assert parse_qs(urlparse(forced_link).query)["force"][0].startswith("40:")
    page.locator(f"{LIVE} .g4k-undo").click()
    settle(page)
    assert shown(page) == written and page.locator(f"{LIVE} .g4k-versus").is_hidden()

    # the map as a picture, the run as a file
    with page.expect_download() as png:
        page.locator(f"{LIVE} .g4k-save-png").click()
    picture = Path(png.value.path()).read_bytes()
    width = page.evaluate(f"() => document.querySelector('{LIVE} .g4k-bigcanvas').width")
    assert picture[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(picture[16:20], "big") == width + 20
    with page.expect_download() as saved:
        page.locator(f"{LIVE} .g4k-save-run").click()
    trace = json.loads(Path(saved.value.path()).read_text(encoding="utf-8"))
    assert trace["format"] == "gpt40k-trace" and trace["prompt"] + "".join(s["t"] for s in trace["steps"]) == written
    (tmp_path / "run.json").write_text(json.dumps(trace), encoding="utf-8")
    (tmp_path / "bad.json").write_text('{"hello": 1}', encoding="utf-8")

    # a new tab: the forced link writes the branch again; a saved run loads back and replays
    page = open_page()
    page.goto(forced_link)
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-text span.f')", timeout=60_000)
    page.wait_for_function(DONE_JS, timeout=60_000)
    assert shown(page) == branched
    page.locator(f"{LIVE} .g4k-load-file").set_input_files(str(tmp_path / "bad.json"))
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-keep-info').innerText.includes('not a run')")
    page.locator(f"{LIVE} .g4k-pace").select_option("0")
    page.locator(f"{LIVE} .g4k-load-file").set_input_files(str(tmp_path / "run.json"))
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-keep-info').innerText.startsWith('Replaying')")
    # the loaded run's spans are drawn at once, hidden, but data-state changes at the next frame: until
    # then it still says the previous run's 'idle', so wait for replayed characters too
    page.wait_for_function(f"() => ({DONE_JS})() && {SHOWN_LEN_JS} > {len(settings['prompt'])}", timeout=30_000)
    assert shown(page) == written and "90 / 90" in step_info(page)

    # a link with a knocked-out head: the knock-out written beside the run, as the API writes it
    page = open_page()
    page.goto(f"{app_url}?{urlencode({**settings, 'knock': 'L1H1'})}")
    page.wait_for_function(f"() => document.querySelector('{LIVE} .g4k-versus')?.hidden === false", timeout=60_000)
    page.wait_for_function(DONE_JS, timeout=60_000)
    assert page.inner_text(f"{LIVE} .g4k-versus-bhead") == "Without L1H1"
    assert shown(page) == api_text(app_url, *settings.values(), knock_out="L1H1")
    assert outside == [] and errors == [], (outside, errors)


def test_compare_shows_each_sides_attention_and_loss(page_on):
    page, _, outside, errors = page_on
    page.get_by_role("tab", name="Model").click()
    page.locator("#gpt40k-compare").click()
    for side in ("#gpt40k-out-a", "#gpt40k-out-b"):
        page.wait_for_function(f"() => document.querySelector('{side} .g4k').dataset.state === 'idle' && "
                               f"document.querySelector('{side} .g4k-own').innerText.includes('nats a character')",
                               timeout=60_000)
        assert re.search(r"\d\.\d\d nats a character \(\d\.\d\d bits\) over its 300 characters",
                         page.inner_text(f"{side} .g4k-own"))
        assert page.get_attribute(f"{side} .g4k-bigcanvas", "data-font")  # its map, drawn
        assert page.locator(f"{side} .g4k-bigcanvas").is_visible()
    assert outside == [] and errors == [], (outside, errors)
