"""A Hub that accepts connections and never answers: every command gives up with a message, in bounded time."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT
from gpt40k.project import SHIPPED_MODELS


@pytest.fixture
def stalled_hub():
    """Accepts every connection, reads what is sent, never writes a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("cmd", [
    ["-m", "gpt40k.sample", "alice/model", "--chars", "5"],
    ["train.py", "--resume", "hub:alice/run", "--data", "x.txt"],
    ["-m", "gpt40k.push", str(ROOT / "checkpoints" / SHIPPED_MODELS[0]), "alice/x"],
])
def test_a_stalled_hub_is_a_message_not_a_hang(stalled_hub, tmp_path, cmd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": stalled_hub, "GPT40K_HUB_TIMEOUT": "1",
           "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_writer_secret_token_1234"}
    start = time.monotonic()
    done = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "did not answer within 1 s" in done.stderr + done.stdout
    assert elapsed < 60, elapsed  # the client retries a few times: bounded, not for ever


def test_the_app_starts_on_the_shipped_model_when_the_hub_stalls(stalled_hub, tmp_path):
    from gpt40k.app.registry import ModelRegistry
    from gpt40k.hub.client import HUB_TIMEOUT_S  # noqa: F401 (read at import: set by the env in a subprocess)

    code = ("from gpt40k.app.registry import ModelRegistry; r = ModelRegistry(); r.add_shipped(); "
            "r.request('alice/model'); print(r.default); print(r.warning)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": stalled_hub, "GPT40K_HUB_TIMEOUT": "1",
           "HF_HOME": str(tmp_path / "hf")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "did not answer within 1 s" in done.stdout and time.monotonic() - start < 60
    assert ModelRegistry  # imported here too: the registry itself needs no network
