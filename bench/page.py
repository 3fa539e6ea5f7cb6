"""The page as a visitor meets it: app.py with the shipped model, driven by Debian's chromium.

    python bench/page.py [--model CHECKPOINT] [--chars 600] [--runs 20]   # default: the shipped default model

Prints, for the CPU it runs on: seconds from Generate to the first written character; characters
per second actually shown at the fastest setting and at the default pace; the time of a layer
switch and of a scrub step (drawn in the browser); the server's CPU per stream and its memory
after many runs; the same stream rate for 4 visitors at once; and whether the text being written
stayed in view in every sample, at 1440x900 and 390x844. Needs chromium (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt40k.project import default_checkpoint  # noqa: E402
from gpt40k.device import describe_cpu  # noqa: E402

LIVE = "#gpt40k-live"
COUNT_JS = f"() => document.querySelectorAll('{LIVE} .g4k-text span.g:not(.hidden)').length"
STATE_JS = f"() => document.querySelector('{LIVE} .g4k').dataset.state"
RUN_JS = f"() => document.querySelector('{LIVE} .g4k').dataset.run || ''"
# Is the newest shown character inside the window and inside the text pane's visible part?
IN_VIEW_JS = f"""() => {{
  const spans = document.querySelectorAll('{LIVE} .g4k-text span[data-pos]:not(.hidden)');
  if (!spans.length) return true;
  const r = spans[spans.length - 1].getBoundingClientRect();
  const pane = document.querySelector('{LIVE} .g4k-text').getBoundingClientRect();
  return r.bottom > 0 && r.top < window.innerHeight && r.top >= pane.top - 1 && r.bottom <= pane.bottom + 1;
}}"""
FRAME_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # behind a proxy, as on a Space: the 4 visitors below are 4 clients (X-Forwarded-For), each
    # within the page's 2 runs a client; on loopback they would all be one
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GPT40K_BEHIND_PROXY": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--model", model, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("app.py did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_page(browser, url, width=1440, height=900, client: str = "10.0.0.1"):
    page = browser.new_page(viewport={"width": width, "height": height},
                            extra_http_headers={"X-Forwarded-For": client})
    page.goto(url)
    page.wait_for_selector("#gpt40k-generate")
    page.get_by_text("Settings:", exact=False).first.click()
    return page


def prepare(page, chars: int, pace: str, prompt: str = "In the grim darkness of the far future") -> None:
    page.locator("#gpt40k-prompt textarea").fill(prompt)
    box = page.locator("#gpt40k-max-new input")
    box.click()  # as a person types: fill() right after the accordion opens can race the box's set-up
    box.press("Control+a")
    box.type(str(chars))
    box.press("Tab")
    page.locator(f"{LIVE} .g4k-pace").select_option(pace)
    page.wait_for_timeout(200)


# Records, inside the page, when each written character is shown: no polling delay in the figures.
RECORD_JS = f"""() => {{
  const text = document.querySelector('{LIVE} .g4k-text');
  window.__shown = [];
  window.__clicked = performance.now();
  const count = () => text.querySelectorAll('span.g:not(.hidden)').length;
  if (window.__observer) window.__observer.disconnect();
  window.__observer = new MutationObserver(() => {{
    const n = count(), log = window.__shown;
    if (!log.length || log[log.length - 1][1] !== n) log.push([performance.now(), n]);
  }});
  window.__observer.observe(text, {{subtree: true, childList: true, attributes: true, attributeFilter: ['class']}});
}}"""
SHOWN_LOG_JS = "() => ({clicked: window.__clicked, shown: window.__shown})"


def click(page):
    """Press Generate; return (page, the run shown before it)."""
    before = page.evaluate(RUN_JS)
    page.evaluate(RECORD_JS)  # the page's own clock times the click and each character shown
    page.locator("#gpt40k-generate").click()
    return page, before


def start(page, chars: int, pace: str):
    prepare(page, chars, pace)
    return click(page)


def watch(started, timeout=120.0) -> list[dict]:
    """Poll every page until each shows its whole text: first-character time, shown rate, in-view."""
    stats = [{"samples": [], "in_view": True} for _ in started]
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        busy = False
        for (page, before), st in zip(started, stats):
            if page.evaluate(RUN_JS) == before:  # the new run has not begun on this page yet
                busy = True
                continue
            n, state = page.evaluate(COUNT_JS), page.evaluate(STATE_JS)
            if n:
                st["samples"].append((time.perf_counter(), n))
                if state != "idle":
                    st["in_view"] &= page.evaluate(IN_VIEW_JS)
            busy |= state != "idle" or not n
        if not busy:
            break
        time.sleep(0.03)
    for (page, _), st in zip(started, stats):
        log = page.evaluate(SHOWN_LOG_JS)  # the page's own clock: when each count of characters showed
        shown = [(t, n) for t, n in log["shown"] if n > 0]
        (t1, n1), (t2, n2) = shown[0], shown[-1]
        st["first"] = (t1 - log["clicked"]) / 1000
        st["rate"] = (n2 - n1) / ((t2 - t1) / 1000) if t2 > t1 else float("nan")
        st["chars"] = n2
    return stats


def in_browser_ms(page, action_js: str) -> float:
    """Milliseconds from an action to the frame that shows it."""
    return page.evaluate(f"""async () => {{ const t = performance.now(); {action_js};
      await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
      return performance.now() - t; }}""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(default_checkpoint()))
    parser.add_argument("--chars", type=int, default=600)
    parser.add_argument("--runs", type=int, default=20, help="runs before the memory reading")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"machine: {describe_cpu()}; model: {args.model}\n")
    proc, url = start_app(args.model)
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = open_page(browser, url)
            watch([start(page, 50, "0")])  # warm-up

            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            fast = watch([start(page, args.chars, "0")])[0]
            cpu_share = (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0)
            rows += [("first written character after Generate", f"{fast['first']:.2f} s"),
                     ("characters/s shown, fastest setting", f"{fast['rate']:.0f}"),
                     ("server CPU while streaming at the fastest setting", f"{cpu_share:.0%} of one core")]
            paced = watch([start(page, 300, "35")])[0]
            rows += [("characters/s shown at the default pace (35/s)", f"{paced['rate']:.1f}"),
                     ("text in view in every sample, 1440x900", "yes" if fast["in_view"] and paced["in_view"] else "NO")]
            switch = [in_browser_ms(page, f"document.querySelectorAll('{LIVE} .g4k-overview canvas')[{i}].click()")
                      for i in (8, 15, 22, 1, 9)]
            page.locator(f"{LIVE} .g4k").focus()
            scrub = [in_browser_ms(page, "document.querySelector('#gpt40k-live .g4k').dispatchEvent("
                                         "new KeyboardEvent('keydown', {key: 'ArrowLeft', bubbles: true}))")
                     for _ in range(10)]
            rows += [("layer/head switch, drawn", f"{sorted(switch)[len(switch) // 2]:.0f} ms (median)"),
                     ("scrub one step, drawn", f"{sorted(scrub)[len(scrub) // 2]:.0f} ms (median)")]

            phone = open_page(browser, url, 390, 844)
            mobile = watch([start(phone, 300, "35")])[0]
            rows.append(("text in view in every sample, 390x844", "yes" if mobile["in_view"] else "NO"))
            phone.close()

            pages = [open_page(browser, url, client=f"10.0.1.{i}") for i in range(4)]
            for pg in pages:
                prepare(pg, 1500, "0")
            together = watch([click(pg) for pg in pages])
            rows.append(("4 visitors at once: characters/s shown, each (fastest setting)",
                         ", ".join(f"{s['rate']:.0f}" for s in together)))
            for pg in pages:
                pg.close()

            for _ in range(args.runs):
                watch([start(page, 300, "0")])
            rows.append((f"server memory after {args.runs + 8} runs", f"{rss_mb(proc.pid):.0f} MB"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
