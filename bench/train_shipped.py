"""How a shipped model is trained: a sweep at the full budget, on one GPU (the grimdark model was made so).

    python bench/train_shipped.py --data ../shared/corpus/grimfuture --out runs/shipped --budget-s 330

A model of ~1.8M parameters leaves most of a large GPU idle, so the candidate recipes run *at
the same time*, each as its own `train.py` process, together with the seed's plain recipe as the
baseline. A short probe first measures each one's steps per second in that company; then every
run gets the number of steps that fits the budget, so its cosine schedule ends on time rather
than being cut by the time limit. The run with the best val loss wins. Every run keeps a
snapshot at each evaluation (--snapshot-every), for the app's training timeline.

Prints a table and writes OUT/sweep.json. Works on the CPU too (for a dry run: --budget-s 20).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMON = ["--preset", "seed", "--min-char-count", "50", "--patience", "0", "--sample-chars", "0"]
EVALS = 50  # evaluations (and snapshots) per run: the first one lands at 2% of the steps
# The architecture is the seed's (4 layers, 6 heads, 192 channels); the recipes differ.
CANDIDATES = {
    "lr2e-3_drop0.1": ["--batch-size", "128", "--lr", "2e-3", "--dropout", "0.1", "--warmup-iters", "200"],
    "lr1e-3_drop0.1": ["--batch-size", "128", "--lr", "1e-3", "--dropout", "0.1", "--warmup-iters", "200"],
    "lr2e-3_drop0.0": ["--batch-size", "128", "--lr", "2e-3", "--dropout", "0.0", "--warmup-iters", "200"],
    "lr2e-3_drop0.2": ["--batch-size", "128", "--lr", "2e-3", "--dropout", "0.2", "--warmup-iters", "200"],
    "bs256_lr3e-3_drop0.1": ["--batch-size", "256", "--lr", "3e-3", "--dropout", "0.1", "--warmup-iters", "200"],
}
# The original author's recipe: fixed lr 3e-4, fp32, ReLU, AdamW defaults, no warm-up, decay or clipping.
BASELINE = {"seed_plain": ["--batch-size", "64", "--lr", "3e-4", "--lr-schedule", "constant", "--dtype", "float32",
                           "--dropout", "0.2", "--activation", "relu", "--warmup-iters", "0", "--grad-clip", "0",
                           "--weight-decay", "0.01", "--beta2", "0.999"]}

# --smoke: a tiny model, to try the whole procedure on a laptop's CPU in a minute.
SMOKE = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "32", "--batch-size", "8"]


def launch(name: str, flags: list[str], args, out: Path, extra: list[str]) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    smoke = SMOKE if args.smoke else []
    cmd = [sys.executable, str(ROOT / "train.py"), "--data", args.data, "--out", str(out), "--device", args.device,
           *COMMON, *flags, *extra, *smoke]
    log = open(out / "train.log", "w")
    # Several processes share the host's cores: a few threads each, not all of them each.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def wait_all(procs: dict[str, subprocess.Popen], deadline: float) -> None:
    """Wait; past the deadline, SIGTERM (the trainer saves and exits), then SIGKILL."""
    for name, p in procs.items():
        try:
            p.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            print(f"{name}: over time, stopping it", flush=True)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def probe(runs: dict[str, list[str]], args) -> dict[str, float]:
    """Steps per second of every run while all run together."""
    probe_dir = Path(args.out) / "probe"
    minutes = args.probe_s / 60
    procs = {n: launch(n, f, args, probe_dir / n, ["--max-iters", "1000000", "--eval-interval", "1000000",
                                                  "--eval-iters", "1", "--time-limit", f"{minutes:.3f}"])
             for n, f in runs.items()}
    wait_all(procs, time.time() + args.probe_s + 120)
    rates = {}
    for n in runs:
        s = read_json(probe_dir / n / "run_summary.json")
        rates[n] = s["steps"] / s["elapsed_s"] if s.get("elapsed_s") else 0.0
        print(f"probe {n}: {rates[n]:.1f} steps/s", flush=True)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="runs/shipped")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-s", type=float, default=330, help="training seconds per run (all run together)")
    parser.add_argument("--probe-s", type=float, default=25)
    parser.add_argument("--smoke", action="store_true", help="tiny models: try the procedure, not the recipes")
    parser.add_argument("--share", type=float, default=0.85, help="share of the budget for steps (rest: evaluations)")
    args = parser.parse_args()
    runs = {**CANDIDATES, **BASELINE}
    rates = probe(runs, args)
    procs, plan = {}, {}
    for name, flags in runs.items():
        evals = EVALS if name in CANDIDATES else 10
        steps = max(evals, int(rates[name] * args.budget_s * args.share) // evals * evals)
        plan[name] = {"max_iters": steps, "eval_interval": steps // evals}
        extra = ["--max-iters", str(steps), "--eval-interval", str(steps // evals), "--eval-iters", "20",
                 "--time-limit", f"{args.budget_s / 60:.3f}"]
        if name in CANDIDATES:
            extra += ["--snapshot-every", str(steps // evals)]
        procs[name] = launch(name, flags, args, Path(args.out) / name, extra)
    print("plan:", json.dumps(plan), flush=True)
    wait_all(procs, time.time() + args.budget_s + 90)
    results = {}
    for name in runs:
        s = read_json(Path(args.out) / name / "run_summary.json")
        results[name] = {**plan[name], **s, "flags": runs[name], "rc": procs[name].returncode}
    finished = {n: r for n, r in results.items() if n in CANDIDATES and r.get("best_val_loss")}
    winner = min(finished, key=lambda n: finished[n]["best_val_loss"]) if finished else None
    Path(args.out, "sweep.json").write_text(json.dumps({"winner": winner, "runs": results}, indent=2))
    print("\n| run | steps | tokens | minutes | best val loss | stop |\n|---|---|---|---|---|---|")
    for n, r in results.items():
        best = f"{r['best_val_loss']:.4f}" if r.get("best_val_loss") else "-"
        print(f"| {n}{' (winner)' if n == winner else ''} | {r.get('steps', '-')} | {r.get('tokens', '-')} | "
              f"{r.get('elapsed_s', 0) / 60:.1f} | {best} | {r.get('stop_reason', 'rc ' + str(r['rc']))} |")
    print(f"\nwinner: {winner}")
    return 0 if winner else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
