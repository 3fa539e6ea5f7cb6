"""Hostile files, hostile requests and a hostile disk (issue 23): each case here failed on the tree
before it, with a traceback, a hang, gigabytes of memory, or lost work."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch

from conftest import ROOT, tiny_args
from gpt40k import sample
from gpt40k.train import main as train_main
from gpt40k.project import default_checkpoint

SHIPPED = default_checkpoint()


def copy_shipped(folder):
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "loss_curve.png"):
        shutil.copyfile(SHIPPED / name, folder / name)
    return folder


def peak_rss_mb_of(code: str) -> tuple[int, float, str]:
    """Run ``code`` in a fresh interpreter: (exit code, its peak memory in MB, its output)."""
    wrapper = (f"{code}\nimport resource, sys\n"
               "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", wrapper], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = float(done.stderr.rsplit("PEAK", 1)[1]) if "PEAK" in done.stderr else float("inf")
    return done.returncode, peak, done.stdout + done.stderr


# ---- files: regular, bounded, inside the folder ----------------------------------------------
@pytest.mark.parametrize("name, target", [("tokenizer.json", "/dev/zero"), ("config.json", "/dev/zero"),
                                          ("tokenizer.json", "/etc/passwd")])
def test_links_out_of_the_folder_are_refused(tmp_path, capsys, name, target):
    folder = copy_shipped(tmp_path / "m")
    (folder / name).unlink()
    (folder / name).symlink_to(target)
    assert sample.main([str(folder), "--chars", "3"]) == 1
    err = capsys.readouterr().err
    assert "points outside its folder" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "snapshot.json", "training_state.pt"])
def test_a_fifo_never_hangs_a_reader(tmp_path, name):
    from gpt40k.app.registry import find_snapshots
    from gpt40k.checkpoint import CheckpointError, load, load_training_state

    folder = copy_shipped(tmp_path / "m")
    snap = copy_shipped(folder / "snapshots" / "step-000020")
    (snap / "snapshot.json").write_text(json.dumps({"step": 20, "val_loss": 2.0}))
    target = snap if name == "snapshot.json" else folder
    (target / name).unlink(missing_ok=True)
    os.mkfifo(target / name)
    result = {}

    def read():
        try:
            if name == "snapshot.json":
                result["value"] = find_snapshots(folder)
            elif name == "training_state.pt":
                load_training_state(folder)
            else:
                load(folder)
        except CheckpointError as e:
            result["error"] = str(e)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "a reader blocked on a FIFO"
    assert result.get("value") == [] or "not a regular file" in result.get("error", "")


def test_the_app_shows_no_card_from_outside_the_folder(tmp_path):
    from gpt40k.app.registry import LoadedModel

    folder = copy_shipped(tmp_path / "m")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to("/etc/passwd")
    (folder / "loss_curve.png").unlink()
    (folder / "loss_curve.png").symlink_to("/dev/zero")
    card = LoadedModel("m", None, None, folder).card
    assert "root:" not in card and "points outside its folder" in card


def test_a_model_loading_for_ever_does_not_freeze_other_visitors(trained_run, monkeypatch):
    from gpt40k.app.registry import ModelRegistry

    registry = ModelRegistry()
    registry.request(str(trained_run))
    registry.sources["stuck"] = str(trained_run)
    release, loading = threading.Event(), threading.Event()
    real_load = registry.load

    def slow_load(name, source):
        if name == "stuck":
            loading.set()
            release.wait(30)
        return real_load(name, source)

    monkeypatch.setattr(registry, "load", slow_load)
    stuck = threading.Thread(target=registry.get, args=("stuck",), daemon=True)
    stuck.start()
    assert loading.wait(30)  # the stuck load has begun
    start = time.monotonic()
    assert registry.get(registry.default).model is not None  # another model: answered at once
    assert time.monotonic() - start < 1.0
    waiting = threading.Thread(target=registry.get, args=("stuck",), daemon=True)
    waiting.start()  # a second visitor for the stuck model waits for the same load, not a second one
    release.set()
    stuck.join(10)
    waiting.join(10)
    assert "stuck" in registry.loaded and not registry._loading


# ---- the cost of one request ---------------------------------------------------------------------
def test_one_request_on_a_huge_attention_model_stays_small():
    from gpt40k.app.request import ATTENTION_BUDGET, fit_to_budget

    keep, allowed, notes = fit_to_budget(8192, 2000, n_layer=4, n_head=16, block=8192)
    assert keep * keep * 4 * 16 <= ATTENTION_BUDGET and (keep + allowed) * 4 * 16 * min(8192, keep + allowed) \
        <= ATTENTION_BUDGET + keep * 4 * 16 * 8192
    assert len(notes) == 2 and "stays within memory" in notes[0]
    assert fit_to_budget(256, 2000, n_layer=4, n_head=6, block=256) == (256, 2000, [])  # the shipped model: as asked


def test_a_hostile_checkpoint_and_a_long_prompt_cost_megabytes_not_gigabytes(tmp_path):
    from gpt40k import GPT, GPTConfig, CharTokenizer

    folder = tmp_path / "wide"
    model = GPT(GPTConfig(vocab_size=39, block_size=8192, n_layer=4, n_head=16, n_embd=32, dropout=0.0))
    model.save_pretrained(folder, CharTokenizer("abcdefghijklmnopqrstuvwxyz .,;:!?'-ABCD"))
    code = (f"from gpt40k import load\nfrom gpt40k.app.transcript import generate\n"
            f"from gpt40k.app.request import GenerationRequest\nlm = load({str(folder)!r})\n"
            f"t = None\nfor t, _ in generate(lm.model, lm.tokenizer, GenerationRequest('ab ' * 2731, 2000)): pass\n"
            f"print(len(t.steps), t.notes)")
    rc, peak, out = peak_rss_mb_of(code)
    assert rc == 0, out
    assert peak < 1500, f"{peak:.0f} MB"  # before: 8.6 GB
    assert "stays within memory" in out


# ---- convert checks before it builds -------------------------------------------------------------
def test_convert_refuses_a_nanogpt_config_its_weights_do_not_fill(tmp_path):
    ckpt = {"model_args": {"n_layer": 128, "n_head": 8, "n_embd": 8192, "block_size": 256, "bias": True,
                           "vocab_size": 65}, "model": {"transformer.wte.weight": torch.zeros(65, 8)}}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    import pickle

    (tmp_path / "meta.pkl").write_bytes(pickle.dumps({"itos": {i: chr(65 + i) for i in range(65)}}))
    code = (f"from gpt40k import convert\nprint('RC', convert.main(['--from', 'nanogpt', {str(tmp_path / 'ckpt.pt')!r}, "
            f"'--meta', {str(tmp_path / 'meta.pkl')!r}, '--out', {str(tmp_path / 'out')!r}]))")
    rc, peak, out = peak_rss_mb_of(code)
    assert "RC 1" in out and "Traceback" not in out and peak < 1500, (peak, out)


def test_convert_refuses_hollow_tensors(tmp_path, capsys):
    from gpt40k import convert

    big = torch.zeros(1).expand(4096, 4096)  # stores one number, claims 64 MB
    state = {"token_embedding_table.weight": torch.zeros(65, 4096), "position_embedding_table.weight": big,
             "blocks.0.sa.heads.0.key.weight": big}
    torch.save(state, tmp_path / "model.pth")
    (tmp_path / "corpus.txt").write_text("".join(chr(65 + i) for i in range(65)))
    assert convert.main(["--from", "seed", str(tmp_path / "model.pth"), "--corpus", str(tmp_path / "corpus.txt"),
                         "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_convert_never_writes_over_a_folder(tmp_path, capsys):
    from gpt40k import convert

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("mine")
    assert convert.main(["--from", "seed", "x.pth", "--corpus", "x.txt", "--out", str(tmp_path / "out")]) == 1
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "out" / "thesis.tex").read_text() == "mine"


# ---- tracebacks that are now messages ------------------------------------------------------------
def test_sample_with_a_seed_too_large(capsys):
    assert sample.main([str(SHIPPED), "--seed", "99999999999999999999999", "--chars", "3"]) == 1
    assert "--seed must be between 0 and 2**63 - 1" in capsys.readouterr().err


def test_a_vocabulary_with_a_lone_surrogate(tmp_path, capsys):
    folder = copy_shipped(tmp_path / "m")
    data = json.loads((folder / "tokenizer.json").read_text())
    data["vocab"] = sorted(data["vocab"][:-1] + ["\ud800"])
    (folder / "tokenizer.json").write_text(json.dumps(data))
    assert sample.main([str(folder), "--chars", "3"]) == 1
    assert "lone surrogates" in capsys.readouterr().err


def test_a_deeply_nested_config(tmp_path, capsys):
    folder = copy_shipped(tmp_path / "m")
    (folder / "config.json").write_text("[" * 30000 + "]" * 30000)  # small, but past Python's recursion limit
    assert sample.main([str(folder), "--chars", "3"]) == 1
    assert "nests too deeply" in capsys.readouterr().err


def test_a_batch_too_large_for_memory_is_a_message(books, tmp_path, capsys, monkeypatch):
    from gpt40k.training import trainer as trainer

    def no_memory(self):  # what --batch-size 100000000 meets on the first step
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 214748364800 bytes")

    monkeypatch.setattr(trainer.Trainer, "train_step", no_memory)
    assert train_main(tiny_args(books, tmp_path / "run", max_iters=5, eval_interval=5)) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "lower --batch-size" in err


def test_a_full_disk_inside_torch_save_is_a_message(books, tmp_path, capsys, monkeypatch):
    from gpt40k import checkpoint

    def torch_full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 1024 vs 960: file write failed")

    monkeypatch.setattr(checkpoint.torch, "save", torch_full)
    assert train_main(tiny_args(books, tmp_path / "run", max_iters=5, eval_interval=5)) == 1
    err = capsys.readouterr().err
    assert "cannot write a checkpoint" in err and "Traceback" not in err


def test_a_kill_between_the_renames_of_best_loads_the_complete_copy(trained_run, tmp_path):
    from gpt40k import load

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "best").rename(run / "best.old")  # the moment between atomic_folder's two renames
    assert load(run).folder == run / "best.old"


def test_resuming_on_other_books_is_refused_not_called_rare(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "book.txt").write_text("ΑΒΓΔ ΕΖΗΘ ικλμ νξοπ\n" * 2000)  # Greek: none of it in the run's vocabulary
    assert train_main(["--resume", str(out), "--data", str(other), "--max-iters", "20"]) == 1
    err = capsys.readouterr().err
    assert "never had in its vocabulary" in err and "rare" not in err


def test_a_fifo_for_metrics_does_not_hang_a_resume(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 0
    (out / "metrics.jsonl").unlink()
    os.mkfifo(out / "metrics.jsonl")
    result = {}
    thread = threading.Thread(target=lambda: result.update(rc=train_main(["--resume", str(out), "--max-iters", "20"])),
                              daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and result["rc"] == 1
    assert "not a regular file" in capsys.readouterr().err


def test_app_address_checks(capsys):
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", "-1"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})  # the real command, once
    assert done.returncode != 0 and "is not a port number" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    from gpt40k.app.serve import main as serve  # the rest in this process: an exception fails the test

    assert serve(["--host", "999.999.1.1"]) == 2 and "is not an address of this machine" in capsys.readouterr().out
