"""Two CPU processes under torchrun with the gloo backend: the CPU twin of 2-GPU NCCL training."""

import os
import subprocess
import sys

from conftest import ROOT, tiny_args
from gpt40k.checkpoint import load, load_training_state
from gpt40k.training.plotting import read_metrics


def torchrun(args, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "train.py"), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_two_process_gloo_training_and_resume(books, tmp_path):
    out = tmp_path / "run"
    proc = torchrun(tiny_args(books, out, max_iters=40, eval_interval=20, device="cpu"), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cpu x 2 processes" in proc.stdout
    assert proc.stdout.count("step     20:") == 1  # only rank 0 logs
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 20, 40]  # only rank 0 writes
    assert rows[-1]["tokens"] == 40 * 2 * 16 * 32  # both processes' batches count
    state = load_training_state(out / "latest")
    assert len(state["rng"]) == 2  # each rank's RNG, for an exact resume
    load(out)

    proc = torchrun(["--resume", str(out), "--max-iters", "60"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [0, 20, 40, 60]
