import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, tiny_args
from gpt40k.checkpoint import load_training_state
from gpt40k.train import build_parser, resolve_config, main as train_main
from gpt40k.training.config import TrainConfig, build_config
from gpt40k.training.plotting import read_metrics
from gpt40k.training.trainer import Trainer, TrainingError, lr_at


def metrics(run):
    return [(m["step"], m["train_loss"], m["val_loss"]) for m in read_metrics(run / "metrics.jsonl")]


def test_tiny_training_run_end_to_end(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=120, eval_interval=40, sample_chars=30)) == 0
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 40, 80, 120]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 1.0  # it learned something
    assert abs(rows[-1]["val_bpc"] - rows[-1]["val_loss"] / 0.693147) < 1e-3
    for name in ("best/config.json", "best/model.safetensors", "best/tokenizer.json", "latest/training_state.pt",
                 "latest/train_args.json", "train_args.json", "loss_curve.png", "data_cache"):
        assert (out / name).exists(), name
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "01_first.txt" in printed and "total" in printed  # the corpus table
    assert "best val loss" in printed and "parameters" in printed


def test_resume_reproduces_the_uninterrupted_run(books, tmp_path):
    common = dict(max_iters=60, eval_interval=20, dropout=0.1)
    straight = tmp_path / "straight"
    assert train_main(tiny_args(books, straight, **common)) == 0

    stopped = tmp_path / "stopped"
    cfg, _ = resolve_config(build_parser().parse_args(tiny_args(books, stopped, **common)))
    trainer = Trainer(cfg)
    assert trainer.run(until_step=30).stop_reason == "interrupted"  # between two evaluations
    trainer.close()
    assert load_training_state(stopped / "latest")["step"] == 30
    assert train_main(["--resume", str(stopped)]) == 0
    assert metrics(stopped) == metrics(straight)  # same losses, to the last digit logged
    a = torch.load(straight / "latest/training_state.pt", weights_only=True)
    b = torch.load(stopped / "latest/training_state.pt", weights_only=True)
    assert a["step"] == b["step"] == 60 and a["best_val"] == b["best_val"]


def test_resume_flags_override_the_saved_ones(books, tmp_path):
    run = tmp_path / "run"
    assert train_main(tiny_args(books, run, max_iters=20, eval_interval=10)) == 0
    assert train_main(["--resume", str(run), "--max-iters", "30"]) == 0
    assert [m[0] for m in metrics(run)] == [0, 10, 20, 30]
    assert json.loads((run / "train_args.json").read_text())["max_iters"] == 30
    assert train_main(["--resume", str(run), "--n-embd", "64"]) == 1  # a different model cannot resume


def test_sigterm_saves_a_resumable_checkpoint(books, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), *tiny_args(books, out, max_iters=1_000_000, eval_interval=50)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() or len(metrics(out)) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "interrupted (SIGTERM)" in output and f"--resume {out}" in output
    step = load_training_state(out / "latest")["step"]
    assert step >= 50
    assert train_main(["--resume", str(out), "--max-iters", str(step + 10)]) == 0
    assert load_training_state(out / "latest")["step"] == step + 10


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(books, tmp_path):
    out = tmp_path / "run"
    cfg = build_config("tiny", dict(data=[str(books)], out=str(out), sample_chars=0, dtype="float32"))
    trainer = Trainer(cfg)
    trainer.run(until_step=10)
    with torch.no_grad():
        trainer.model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"loss became nan at step 11.*last good checkpoint"):
        trainer.run()
    state = load_training_state(out / "latest")
    assert state["step"] == 10
    from safetensors.torch import load_file
    assert torch.isfinite(load_file(out / "latest/model.safetensors")["lm_head.weight"]).all()


def test_training_in_a_thread_of_its_own_keeps_its_threads_after_a_sample(books, tmp_path):
    """A sample runs its decode steps on one CPU thread; the trainer's thread (here not the main
    one, as in a notebook's background thread) trains on its own count again afterwards."""
    import threading

    cfg = build_config("tiny", dict(data=[str(books)], out=str(tmp_path / "run"), sample_chars=0))
    trainer = Trainer(cfg)
    seen = {}

    def train_in_thread():
        torch.set_num_threads(2)
        seen["sample"] = len(trainer.sample_text(20))
        seen["after"] = torch.get_num_threads()

    before = torch.get_num_threads()
    try:
        worker = threading.Thread(target=train_in_thread)
        worker.start()
        worker.join(60)
        assert seen == {"sample": 20, "after": 2}
    finally:
        trainer.close()
        torch.set_num_threads(before)


def test_early_stopping_keeps_best_apart_from_latest(books, tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = build_config("tiny", dict(data=[str(books)], out=str(out), sample_chars=0, patience=2,
                                    eval_interval=10, max_iters=200))
    devices = []
    monkeypatch.setattr("gpt40k.device.keep_freed_memory", devices.append)
    trainer = Trainer(cfg)
    assert devices == [torch.device("cpu")]  # training on a CPU keeps freed tensors' memory (device.py)
    val_losses = iter([3.0, 2.0, 2.5, 2.6, 2.7])  # best at step 10, then two worse evaluations
    monkeypatch.setattr(trainer, "estimate_loss", lambda: {"train": 1.0, "val": next(val_losses)})
    result = trainer.run()
    assert result.stop_reason == "early stopping" and result.step == 30
    assert result.best_step == 10 and result.best_val_loss == 2.0
    assert load_training_state(out / "latest")["step"] == 30


def test_time_limit_saves_and_stops(books, tmp_path):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, time_limit=0.0001)) == 0
    assert 1 <= load_training_state(out / "latest")["step"] < 200


def test_learning_rate_schedule():
    cfg = TrainConfig(data=["x"], lr=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(5.5e-4)
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    flat = TrainConfig(data=["x"], lr=1e-3, lr_schedule="constant")
    assert {lr_at(s, flat) for s in (0, 50, 4999)} == {1e-3}


@pytest.mark.parametrize("args, message", [
    ([], "no training data"),
    (["--data", "nowhere/"], "does not exist"),
    (["--data", "BOOKS", "--n-embd", "30", "--n-head", "4"], "divisible"),
    (["--data", "BOOKS", "--block-size", "0"], "--block-size must be a positive integer, got 0"),
    (["--data", "BOOKS", "--n-layer", "1000"], "--n-layer = 1000 is over this project's limit of 128"),
    (["--data", "BOOKS", "--preset", "tiny", "--block-size", "5000"], "corpus is too short"),
    (["--data", "BOOKS", "--device", "cuda"], "no CUDA GPU"),
    (["--resume", "nowhere"], "nothing to resume"),
    (["--data", "BOOKS", "--out", "/proc/gpt40k-run"], "cannot write the run folder"),
])
def test_bad_input_gives_a_message_not_a_traceback(books, tmp_path, args, message):
    args = [a.replace("BOOKS", str(books)) for a in args]
    args += [] if "--out" in args else ["--out", str(tmp_path / "run")]
    if torch.cuda.is_available() and "cuda" in args:
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_flags_override_presets():
    args = build_parser().parse_args(["--data", "a.txt", "b/", "--preset", "cpu", "--lr", "0.01", "--no-bias"])
    cfg, resume = resolve_config(args)
    assert cfg.data == ["a.txt", "b/"] and cfg.lr == 0.01 and cfg.bias is False and resume is None
    assert cfg.n_embd == 128 and cfg.block_size == 64  # from the cpu preset
    seed = resolve_config(build_parser().parse_args(["--data", "a"]))[0]
    assert (seed.n_embd, seed.n_head, seed.n_layer, seed.block_size, seed.batch_size, seed.dropout, seed.lr) == \
        (192, 6, 4, 256, 64, 0.2, 3e-4)


def test_snapshots_keep_a_half_precision_timeline(books, tmp_path):
    from gpt40k.checkpoint import load

    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=60, eval_interval=20, snapshot_every=40)) == 0
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == ["step-000000", "step-000040"]  # step 0 (untrained) too: where the timeline starts
    info = json.loads((out / "snapshots/step-000040/snapshot.json").read_text())
    assert info["step"] == 40 and info["val_loss"] == metrics(out)[2][2]
    model = load(out / "snapshots/step-000040").model
    assert all(p.dtype == torch.float32 for p in model.parameters())  # loading converts fp16 back
    from safetensors import safe_open

    with safe_open(out / "snapshots/step-000040/model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}


def test_snapshot_interval_must_fall_on_evaluations(books, tmp_path):
    assert train_main(tiny_args(books, tmp_path / "r", eval_interval=20, snapshot_every=30)) == 1


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this system")
def test_a_closed_terminal_sighup_stops_like_sigterm():
    from gpt40k.training.trainer import StopSignal

    with StopSignal().installed() as stop:
        signal.raise_signal(signal.SIGHUP)  # Python runs the handler before the next line
        assert stop.requested == "SIGHUP"


def test_compile_trains_on_cpu_with_dropout(books, tmp_path):
    """--compile takes the plain attention and PyTorch's dropout, which the compiler fuses itself
    (the CPU kernels' byte tricks do not survive its tracing)."""
    out = tmp_path / "compiled"
    assert train_main(tiny_args(books, out, max_iters=4, eval_interval=2, dropout=0.1) + ["--compile"]) == 0
    assert load_training_state(out / "latest")["step"] == 4
