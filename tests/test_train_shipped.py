"""bench/train_shipped.py, the sweep a shipped model comes from, tried with --smoke (tiny models):
both ways (side by side; one at a time), and the one-at-a-time sweep stopped and run again."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, make_text

SCRIPT = ROOT / "bench" / "train_shipped.py"
TWO = ("lr3e-3_drop0.0", "lr4e-3_drop0.0")


def books(tmp_path):
    data = tmp_path / "books"
    data.mkdir()
    (data / "a.txt").write_text(make_text(600, seed=1))
    (data / "b.txt").write_text(make_text(200, seed=2))
    return data


def sweep_args(data, out, budget_chars, *extra):
    return [sys.executable, str(SCRIPT), "--data", str(data), "--out", str(out), "--smoke", "--one-at-a-time",
            "--budget-chars", str(budget_chars), "--evals", "4", "--eval-iters", "2", *extra]


def sweep(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def test_one_at_a_time_trains_each_recipe_for_the_budget_and_skips_it_when_run_again(tmp_path):
    data, out = books(tmp_path), tmp_path / "sweep"
    first = sweep(*sweep_args(data, out, 8192, "--recipes", *TWO))
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads((out / "sweep.json").read_text())
    runs = result["runs"]
    for name in TWO:
        # 8192 characters at 8 x 32 a step: 32 steps, 4 evaluations, a snapshot at each
        assert runs[name]["steps"] == runs[name]["max_iters"] == 32 and runs[name]["stop_reason"] == "finished"
        assert sorted(p.name for p in (out / name / "snapshots").iterdir())[-1] == "step-000032"
        assert (out / f"{name}.log").is_file() and not (out / name / "train.log").exists()
    assert result["winner"] == min(TWO, key=lambda n: runs[n]["best_val_loss"])

    again = sweep(*sweep_args(data, out, 8192, "--recipes", *TWO))
    assert again.returncode == 0 and again.stdout.count("finished before, skipped") == 2
    assert json.loads((out / "sweep.json").read_text())["winner"] == result["winner"]

    other_budget = sweep(*sweep_args(data, out, 4096, "--recipes", *TWO))
    assert other_budget.returncode != 0 and "holds a finished run of 32 steps, not the 16" in other_budget.stderr
    assert "Traceback" not in other_budget.stderr


def test_a_stopped_sweep_resumes_where_it_saved_and_ends_as_an_unstopped_one(tmp_path):
    data = books(tmp_path)
    budget = 400_000  # 1,560 steps: long enough to be stopped mid-run
    name = "lr3e-3_drop0.0"
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(sweep_args(data, stopped, budget, "--recipes", name), stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT)
    metrics = stopped / name / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1 and "stopped; the same command continues" in output
    assert "the sweep is not finished" in output
    assert json.loads((stopped / "sweep.json").read_text())["complete"] is False
    assert json.loads((stopped / name / "run_summary.json").read_text())["stop_reason"] == "interrupted"

    resumed = sweep(*sweep_args(data, stopped, budget, "--recipes", name))
    assert resumed.returncode == 0 and f"{name}: resuming" in resumed.stdout, resumed.stdout + resumed.stderr
    whole = sweep(*sweep_args(data, tmp_path / "whole", budget, "--recipes", name))
    assert whole.returncode == 0

    def losses(out):
        return [(m["step"], m["val_loss"]) for m in map(json.loads, (out / name / "metrics.jsonl").open())]

    assert losses(stopped) == losses(tmp_path / "whole")


def test_side_by_side_probes_then_trains_every_recipe_within_the_budget(tmp_path):
    out = tmp_path / "together"
    proc = sweep(sys.executable, str(SCRIPT), "--data", str(books(tmp_path)), "--out", str(out), "--smoke",
                 "--probe-s", "3", "--budget-s", "6", "--evals", "4", "--eval-iters", "2", "--recipes", *TWO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert all(runs[n]["stop_reason"] in ("finished", "time limit") for n in TWO)
    assert all((out / "probe" / f"{n}.log").is_file() for n in TWO)


def test_a_run_that_fails_says_why_under_the_table(tmp_path):
    proc = sweep(*sweep_args(tmp_path / "no-books", tmp_path / "sweep", 8192, "--recipes", *TWO))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("does not exist: pass a text file, a folder of .txt files or a glob") == 2
