"""End to end: app.py on 127.0.0.1, driven through gradio_client like any API user."""

import concurrent.futures
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, _free_port

pytest.importorskip("gradio_client")


def start_app(*args, **env):
    port = _free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False",
                "HF_ENDPOINT": "http://127.0.0.1:9", **env}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("app.py did not start in time")


def stop(proc):
    proc.terminate()
    try:
        return proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


@pytest.fixture(scope="module")
def app_proc(trained_run):
    # As on a Space: behind a proxy, visitors are told apart by the X-Forwarded-For address it adds
    proc, url = start_app("--model", str(trained_run), GPT40K_BEHIND_PROXY="1")
    yield proc, url
    stop(proc)


@pytest.fixture(scope="module")
def app(app_proc):
    return app_proc[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app, verbose=False, analytics_enabled=False, download_files=False)


def text(client, *args) -> str:
    return client.predict(*args, api_name="/generate")["text"]


def test_generate_streams_and_is_reproducible(client):
    job = client.submit("The emperor", 400, 0.8, 0, 1.0, 42, api_name="/generate")
    chunks = [c["text"] for c in job]
    final = job.result()
    assert final["notes"] == [] and final["text"].startswith("The emperor")
    assert len(final["text"]) == len("The emperor") + 400
    assert len(chunks) >= 2 and all(final["text"].startswith(c) for c in chunks)  # it grew in front of us
    assert text(client, "The emperor", 400, 0.8, 0, 1.0, 42) == final["text"]
    assert text(client, "The emperor", 400, 0.8, 0, 1.0, 43) != final["text"]


@pytest.mark.parametrize("prompt, check", [
    ("", lambda out: out.startswith("\n")),
    ("The “holy” fire 🙂\x00\x07 ‮שלום‬", lambda out: out.startswith('The holy fire ')),  # no quotes in its vocab
    ("war " * 25_000, lambda out: len(out) == 32 + 20),  # 100,000 characters: the last block_size are kept
])
def test_bad_prompts_are_handled(client, prompt, check):
    out = client.predict(prompt, 20, 0.8, 0, 1.0, 1, api_name="/generate")
    assert check(out["text"]), out["text"][:80]
    assert prompt == "The" or out["notes"]  # every change to the prompt is explained


def test_out_of_range_numbers_are_clamped_with_notes(client):
    out = client.predict("The", 10**9, -5, -1, 7, -1, api_name="/generate")
    assert out["text"].startswith("The") and len(out["text"]) == 3 + 2000
    assert {n.split()[0] for n in out["notes"]} == {"Length", "Temperature", "Top-k", "Top-p", "Seed"}
    greedy = text(client, "The", 30, 0, 0, 1.0, 1)
    assert greedy == text(client, "The", 30, 0, 0, 1.0, 2)  # temperature 0: no chance
    assert text(client, "The", 30, 1e-45, 0, 1.0, 2) == greedy  # a tiny temperature is greedy, not an error


def test_sixteen_concurrent_clients_get_their_own_reproducible_text(app, client):
    from gradio_client import Client

    def one(seed):  # sixteen visitors, each from an address of its own
        c = Client(app, verbose=False, analytics_enabled=False, download_files=False,
                   headers={"X-Forwarded-For": f"198.51.100.{seed + 1}"})
        return text(c, "The", 60, 1.0, 0, 1.0, seed)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(one, range(16)))
    alone = [text(client, "The", 60, 1.0, 0, 1.0, seed) for seed in (0, 7, 15)]
    assert [together[0], together[7], together[15]] == alone
    assert len(set(together)) == 16


def test_a_model_that_cannot_be_pulled_falls_back_to_the_shipped_one(trained_run):
    if not any((ROOT / "checkpoints").glob("*/config.json")):
        pytest.skip("no shipped checkpoint in checkpoints/")
    proc, url = start_app(GPT40K_MODEL="nobody/does-not-exist", HF_HUB_OFFLINE="1")  # how a Space picks its model
    try:
        with urllib.request.urlopen(url + "config", timeout=10) as r:
            config = r.read().decode()
        assert "Could not load the model" in config and "nobody/does-not-exist" in config
    finally:
        log = stop(proc)
    assert "Could not load the model 'nobody/does-not-exist'" in log


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_memory_stays_flat_across_many_requests(app_proc, client):
    proc, _ = app_proc
    for seed in range(10):  # warm-up: allocator pools, caches
        client.predict("The", 300, 1.0, 0, 1.0, seed, api_name="/generate")
    before = rss_mb(proc.pid)
    for seed in range(40):
        client.predict("The", 300, 1.0, 0, 1.0, 100 + seed, api_name="/generate")
    assert rss_mb(proc.pid) - before < 40  # MB: no per-request leak (one request's state is ~1 MB)


def test_page_requests_cannot_starve_the_api(app, client):
    """The attack of issue 13: flood the page's own generation event through the queue (as any HTTP client
    can) with the largest requests, never reading the answers. Every input is bounded and nothing in a
    request waits, so the API still answers at once: it has its own slots."""
    import json
    import urllib.request

    deps = json.load(urllib.request.urlopen(app + "config"))["dependencies"]
    write = next(d["id"] for d in deps if len(d.get("inputs", [])) == 7)  # model, prompt and the five knobs
    for i in range(8):
        body = json.dumps({"data": [None, "The" * 10_000, 10**9, 1.0, 0, 1.0, i], "fn_index": write,
                           "session_hash": f"flood{i}", "event_data": None, "trigger_id": None}).encode()
        request = urllib.request.Request(app + "gradio_api/queue/join", data=body,  # from the attacker's address
                                         headers={"Content-Type": "application/json",
                                                  "X-Forwarded-For": "198.51.100.66"})
        assert "event_id" in json.loads(urllib.request.urlopen(request, timeout=10).read())
    started = time.time()
    assert len(text(client, "The", 50, 0.8, 0, 1.0, 0)) == 53
    assert time.time() - started < 6  # seconds: the flood holds the page's 4 slots for ~10 s, not the API's
