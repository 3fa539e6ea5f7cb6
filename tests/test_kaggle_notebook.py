"""The Kaggle notebook, executed cell by cell under nbclient against a simulated /kaggle: a read-only
input (books, and in the second session the kept output of the first), a writable working folder, a
stand-in `kaggle_secrets` holding HF_TOKEN, and the loopback Hub. The code comes from a git clone of
this repository, as GPT40K_SOURCE says. Run as a user would: all cells, all cells again (a re-run in
the same session), then a second session."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TOKENS, make_text

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = ROOT / "notebooks" / "train_on_kaggle.ipynb"
TOKEN = next(iter(TOKENS))


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_notebook(kaggle: Path, source: str, hub_repo: str, env: dict) -> str:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    settings = nb.cells[1]
    replace = {'KAGGLE = Path("/kaggle")': f'KAGGLE = Path({str(kaggle)!r})',
               'GPT40K_SOURCE = ""': f'GPT40K_SOURCE = {source!r}', 'HUB_REPO = ""': f'HUB_REPO = {hub_repo!r}',
               'TRAIN_FLAGS = "--preset seed --time-limit 690"':
                   'TRAIN_FLAGS = "--preset tiny --max-iters 100000 --eval-interval 20 --sample-chars 0 '
                   '--dtype float32 --time-limit 0.04"'}
    for old, new in replace.items():
        assert old in settings.source, old  # the notebook still reads as the test expects
        settings.source = settings.source.replace(old, new)
    old_env = dict(os.environ)
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                                         resources={"metadata": {"path": str(kaggle / "working")}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def steps(run: Path) -> int:
    import torch

    return torch.load(run / "latest" / "training_state.pt", weights_only=True)["step"]


@pytest.fixture
def kaggle_env(tmp_path, hub):
    secrets = tmp_path / "kaggle_site"
    secrets.mkdir()
    (secrets / "kaggle_secrets.py").write_text(
        "class UserSecretsClient:\n    def get_secret(self, name):\n"
        f"        return {TOKEN!r} if name == 'HF_TOKEN' else None\n")
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(secrets),
           "KAGGLE_KERNEL_RUN_TYPE": "Interactive", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}  # everything is installed: pip checks only
    os.environ.pop("HF_TOKEN", None)
    return env


def test_the_notebook_as_written_two_sessions_and_a_rerun(tmp_path, kaggle_env, hub):
    clone_from = tmp_path / "origin.git"  # what GPT40K_SOURCE names: a clone of this repository
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(clone_from)], check=True)
    first = tmp_path / "session1"
    books = first / "input" / "my-books"
    books.mkdir(parents=True)
    (books / "book.txt").write_text(make_text(600, seed=4))
    (first / "working").mkdir()
    before = digest(first / "input")

    out = run_notebook(first, str(clone_from), "alice/kaggle-run", kaggle_env)
    run = first / "working" / "run1"
    assert "time limit reached" in out and "The Emperor" in out
    s1 = steps(run)
    assert "last-checkpoint/training_state.pt" in hub.files("alice/kaggle-run")
    out = run_notebook(first, str(clone_from), "alice/kaggle-run", kaggle_env)  # Run all again, same session
    assert "using the code in" in out and "fatal" not in out and "--resume" in out
    s2 = steps(run)
    assert s2 > s1 + 1  # --time-limit is per session: the re-run trained again
    assert digest(first / "input") == before  # nothing written into the input

    second = tmp_path / "session2"  # a new session: the kept output comes back under /kaggle/input
    shutil.copytree(books, second / "input" / "my-books")
    shutil.copytree(first / "working", second / "input" / "train-on-kaggle")
    (second / "working").mkdir()
    kept = digest(second / "input")
    out = run_notebook(second, "", "alice/kaggle-run", kaggle_env)  # code copied from the kept output
    assert "copied the code from" in out and "books from" in out and "my-books" in out
    s3 = steps(second / "working" / "run1")
    assert s3 > s2 + 1
    earlier = (first / "working" / "run1" / "metrics.jsonl").read_text().splitlines()
    metrics = (second / "working" / "run1" / "metrics.jsonl").read_text().splitlines()
    assert metrics[:len(earlier)] == earlier  # the first session's evaluations came along: one curve
    assert digest(second / "input") == kept
