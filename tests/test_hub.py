"""Publishing and pulling through the real huggingface_hub client, against the loopback Hub
(tests/hub_server.py) and against a pre-populated offline cache."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from conftest import HF_HOME, ROOT, tiny_args
from gpt40k import GPT, CharTokenizer
from gpt40k.checkpoint import CheckpointError, load_training_state
from gpt40k.train import PUSH_FAILED, main as train_main
from gpt40k.hub.client import HubError, push_folder
from gpt40k.training.plotting import read_metrics

TOKEN = "hf_writer_secret_token_1234"


def run(cmd, **env):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    for k, v in env.items():
        if v is None:
            full_env.pop(k)
    return subprocess.run([sys.executable, *cmd], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=300)


def assert_no_token_anywhere(text: str, *folders: Path):
    assert TOKEN not in text
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def test_train_push_pull_and_resume_from_the_hub(hub, books, tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_args(books, out, max_iters=60, eval_interval=30, push_to_hub="alice/tiny-40k")
    assert train_main([*args, "--push-every", "--push-training-state"]) == 0
    printed = capsys.readouterr()
    files = hub.files("alice/tiny-40k")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "loss_curve.png",
                 "last-checkpoint/training_state.pt", "last-checkpoint/train_args.json"):
        assert name in files, name
    best = read_metrics(out / "metrics.jsonl")[-1]
    assert f"val loss {best['val_loss']:.4f}" in hub.message("alice/tiny-40k")
    assert {"step-30", "step-60"} <= set(hub.state.repos["alice/tiny-40k"].branches)
    assert "Snapshot at step 30" in hub.message("alice/tiny-40k", "step-30")
    assert all(auth == f"Bearer {TOKEN}" for method, _, auth in hub.state.requests if method == "POST")
    assert_no_token_anywhere(printed.out + printed.err, out)

    # pull: the same model as the local best checkpoint; a revision is a branch
    model = GPT.from_pretrained("alice/tiny-40k")
    tok = CharTokenizer.from_pretrained("alice/tiny-40k")
    local = GPT.from_pretrained(out)
    idx = torch.tensor([tok.encode("The emperor")])
    torch.testing.assert_close(model(idx).logits, local(idx).logits)
    early = GPT.from_pretrained("alice/tiny-40k@step-30")
    assert not torch.allclose(early(idx).logits, model(idx).logits)
    with pytest.raises(HubError, match="no revision 'step-999'"):
        GPT.from_pretrained("alice/tiny-40k@step-999")

    # a new machine continues the run from the Hub
    again = tmp_path / "again"
    assert train_main(["--resume", "hub:alice/tiny-40k", "--data", str(books), "--out", str(again),
                       "--max-iters", "90"]) == 0
    assert load_training_state(again / "latest")["step"] == 90
    assert [m["step"] for m in read_metrics(again / "metrics.jsonl")] == [0, 30, 60, 90]
    assert_no_token_anywhere("", Path(HF_HOME))


def test_model_card(hub, trained_run):
    from gpt40k.hub.publish import push_run

    push_run(trained_run, "alice/card-test")
    card = ModelCard(hub.files("alice/card-test")["README.md"].decode())
    assert card.data.library_name == "gpt40k" and card.data.license == "mit" and card.data.language == "en"
    assert {"character-level", "gpt", "text-generation", "pytorch"} <= set(card.data.tags)
    text = card.text
    for needle in ("parameters", "n_layer", "book.txt", "Vocabulary", "best val loss", "bits/char", "loss_curve.png",
                   "Samples", "GPT.from_pretrained(\"alice/card-test\")", "python app.py --model alice/card-test",
                   "min on"):
        assert needle in text, needle


def test_push_to_hub_from_python(hub, trained_run):
    model = GPT.from_pretrained(trained_run)
    tok = CharTokenizer.from_pretrained(trained_run)
    url = model.push_to_hub("alice/from-python", tokenizer=tok)
    assert "alice/from-python/commit/" in url
    assert set(hub.files("alice/from-python")) >= {"config.json", "model.safetensors", "tokenizer.json"}


@pytest.mark.parametrize("token, repo, message", [
    (None, "alice/x", "no Hugging Face token found"),
    ("hf_not_a_real_token", "alice/x", "rejected the token"),
    (TOKEN, "bob/x", "may not write to bob/x"),
])
def test_push_failures_keep_the_run_and_say_how_to_push_later(hub, books, tmp_path, monkeypatch, capsys,
                                                             token, repo, message):
    if token is None:
        monkeypatch.delenv("HF_TOKEN")
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=20, eval_interval=10, push_to_hub=repo)) == PUSH_FAILED
    printed = capsys.readouterr()
    assert message in printed.out
    assert f"python -m gpt40k.push {out} {repo}" in printed.out
    assert (out / "best" / "model.safetensors").exists() and (out / "best" / "README.md").exists()
    assert load_training_state(out / "latest")["step"] == 20
    assert_no_token_anywhere(printed.out + printed.err, out)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    proc = run(["-m", "gpt40k.push", str(out), "alice/later"])  # the command the message suggests works
    assert proc.returncode == 0, proc.stderr
    assert "model.safetensors" in hub.files("alice/later")


def test_no_network_is_reported_and_training_still_finishes(books, tmp_path):
    out = tmp_path / "run"
    proc = run(["train.py", *tiny_args(books, out, max_iters=10, eval_interval=10, push_to_hub="alice/x")],
               HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN=TOKEN)  # nothing listens on port 9
    assert proc.returncode == PUSH_FAILED, proc.stderr
    assert "could not be reached" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert (out / "best" / "model.safetensors").exists()
    assert_no_token_anywhere(proc.stdout + proc.stderr, out)


def test_pulling_what_is_not_a_gpt40k_model(hub, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"123")
    push_folder(folder, "alice/not-gpt40k", commit_message="x")
    with pytest.raises(CheckpointError, match="alice/not-gpt40k is not a GPT-40k model"):
        GPT.from_pretrained("alice/not-gpt40k")
    with pytest.raises(HubError, match="was not found"):
        GPT.from_pretrained("alice/missing")


def test_corrupt_weights_on_the_hub(hub, trained_run, tmp_path):
    import shutil
    folder = tmp_path / "broken"
    shutil.copytree(trained_run / "best", folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    push_folder(folder, "alice/broken", commit_message="truncated")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        GPT.from_pretrained("alice/broken")


def make_offline_cache(cache: Path, repo_id: str, checkpoint: Path) -> None:
    """The standard Hugging Face cache layout, filled by hand: refs/main and one snapshot."""
    import shutil
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(checkpoint, repo_dir / "snapshots" / commit)


def test_offline_pull_from_the_hugging_face_cache(trained_run, tmp_path):
    cache = tmp_path / "hf-cache"
    make_offline_cache(cache, "warhammer/gpt40k-offline", trained_run / "best")
    env = dict(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_ENDPOINT="http://127.0.0.1:9")
    proc = run(["-m", "gpt40k.sample", "warhammer/gpt40k-offline", "--prompt", "The", "--chars", "20",
                "--seed", "1"], **env)
    assert proc.returncode == 0, proc.stderr
    local = run(["-m", "gpt40k.sample", str(trained_run), "--prompt", "The", "--chars", "20", "--seed", "1"], **env)
    assert proc.stdout == local.stdout
    missing = run(["-m", "gpt40k.sample", "warhammer/not-cached"], **env)
    assert missing.returncode == 1 and "not in the local Hugging Face cache" in missing.stderr


def test_token_from_kaggle_secrets_when_hf_token_is_unset(monkeypatch):
    from gpt40k.hub.client import find_token

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert find_token() is None  # not on Kaggle, nothing saved: no token
    secrets = types.ModuleType("kaggle_secrets")

    class UserSecretsClient:
        def get_secret(self, name):
            assert name == "HF_TOKEN"
            return "hf_from_kaggle"

    secrets.UserSecretsClient = UserSecretsClient
    monkeypatch.setitem(sys.modules, "kaggle_secrets", secrets)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert find_token() == "hf_from_kaggle"
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert find_token() == "hf_from_env"  # HF_TOKEN comes first


def test_resume_from_the_hub_with_no_new_best_still_has_the_best_and_pushes(hub, books, tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_args(books, out, max_iters=40, eval_interval=20, push_to_hub="alice/no-new-best")
    assert train_main([*args, "--push-training-state"]) == 0
    pushed = hub.files("alice/no-new-best")["model.safetensors"]
    # another machine, the same number of steps: nothing to train, so no new best
    again = tmp_path / "again"
    assert train_main(["--resume", "hub:alice/no-new-best", "--data", str(books), "--out", str(again)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" not in err
    assert (again / "best/model.safetensors").read_bytes() == pushed  # the Hub's best, kept as best/
    assert (again / "best/README.md").is_file()
    assert hub.files("alice/no-new-best")["model.safetensors"] == pushed  # the push at the end: same best
    assert load_training_state(again / "latest")["step"] == 40


def test_resume_from_the_hub_refuses_a_folder_of_other_files(hub, books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*tiny_args(books, out, max_iters=20, eval_interval=10, push_to_hub="alice/r"),
                       "--push-training-state"]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    assert train_main(["--resume", "hub:alice/r", "--data", str(books), "--out", str(mine)]) == 1
    assert "holds files that are not a training run's" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_push_without_a_token_writes_nothing_locally(hub, tmp_path, monkeypatch, capsys):
    import shutil

    from gpt40k import push

    monkeypatch.delenv("HF_TOKEN")
    folder = tmp_path / "shipped"
    shutil.copytree(ROOT / "checkpoints" / sorted(p.name for p in (ROOT / "checkpoints").iterdir())[0], folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert push.main([str(folder), "alice/x"]) == 1
    assert "no Hugging Face token found" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_push_from_a_read_only_folder(hub, trained_run, tmp_path, capsys):
    """Kaggle's /kaggle/input: the card is made in the upload's staging copy, never in the folder."""
    import shutil

    from gpt40k import push

    ro = tmp_path / "input"
    shutil.copytree(trained_run, ro)
    before = {p: p.read_bytes() for p in ro.rglob("*") if p.is_file()}
    for p in [*ro.rglob("*"), ro]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        assert push.main([str(ro), "alice/from-input"]) == 0
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    card = hub.files("alice/from-input")["README.md"].decode()
    assert "python app.py --model alice/from-input" in card and "loss_curve.png" in hub.files("alice/from-input")
    assert {p: p.read_bytes() for p in ro.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "is not a folder"),
    (["{run}", "--note-file", "{missing}"], "--note-file"),
])
def test_card_command_messages(trained_run, tmp_path, capsys, args, message):
    from gpt40k import card

    args = [a.format(run=trained_run, missing=tmp_path / "nope.md") for a in args]
    assert card.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_push_during_training_keeps_the_progress_bar_whole(tmp_path, capsys):
    """The Hub client's own bars are off while the trainer pushes, and its log lines go above the bar."""
    import logging

    from huggingface_hub.utils import are_progress_bars_disabled

    from gpt40k.training.reporting import Reporter

    seen = {}

    def push():
        seen["bars off"] = are_progress_bars_disabled()
        logging.getLogger("huggingface_hub").warning("a line from the client")
        return "http://hub/commit/1"

    reporter = Reporter(tmp_path, types.SimpleNamespace(push_to_hub="alice/x"), print)
    was = are_progress_bars_disabled()
    assert reporter.push(push) is None
    assert seen["bars off"] and are_progress_bars_disabled() == was
