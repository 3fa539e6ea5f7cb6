import os
import random
import socket
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# huggingface_hub reads its settings when first imported: point it, before anything imports it,
# at the loopback stand-in for the Hub (tests/hub_server.py) and at an empty home, so no real
# token or cache of this machine is used and nothing is ever sent beyond 127.0.0.1.
HUB_PORT = _free_port()
HF_HOME = tempfile.mkdtemp(prefix="gpt40k-test-hf-")
os.environ.update({"HF_ENDPOINT": f"http://127.0.0.1:{HUB_PORT}", "HF_HOME": HF_HOME,
                   "HF_HUB_CACHE": os.path.join(HF_HOME, "hub"), "HF_HUB_DISABLE_TELEMETRY": "1",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5"})
for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE"):
    os.environ.pop(name, None)
TOKENS = {"hf_writer_secret_token_1234": "alice", "hf_other_user_token_5678": "bob"}


@pytest.fixture(scope="session")
def hub_server():
    from hub_server import FakeHub

    server = FakeHub(HUB_PORT, TOKENS).start()
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server, monkeypatch):
    """The loopback Hub, emptied, with alice's token in HF_TOKEN."""
    hub_server.state.repos.clear()
    hub_server.state.requests.clear()
    monkeypatch.setenv("HF_TOKEN", "hf_writer_secret_token_1234")
    return hub_server


WORDS = ("the emperor protects and in the grim darkness of the far future there is only war "
         "brother captain iron halls burn with holy fire while the guard holds the line").split()


def make_text(n_lines: int = 400, seed: int = 0) -> str:
    """Learnable pseudo-prose: random lines of a small vocabulary of words."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
             for _ in range(n_lines)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def books(tmp_path) -> Path:
    """A folder of two small books."""
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "01_first.txt").write_text(make_text(300, seed=1), encoding="utf-8")
    (folder / "02_second.txt").write_text(make_text(300, seed=2), encoding="utf-8")
    return folder


def tiny_args(books: Path, out: Path, **overrides) -> list[str]:
    """train.py arguments for a run of a few seconds."""
    args = ["--data", str(books), "--preset", "tiny", "--out", str(out), "--sample-chars", "0",
            "--dtype", "float32"]
    for k, v in overrides.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One tiny run, trained once for the tests that only read a checkpoint."""
    from gpt40k.train import main as train_main

    base = tmp_path_factory.mktemp("trained")
    folder = base / "books"
    folder.mkdir()
    (folder / "book.txt").write_text(make_text(600, seed=3), encoding="utf-8")
    out = base / "run"
    assert train_main(tiny_args(folder, out, max_iters=150)) == 0
    return out
