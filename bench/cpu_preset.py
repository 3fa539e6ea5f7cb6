"""How the `cpu` preset was chosen: recipes trained on tinyshakespeare in the same wall time.

    python bench/cpu_preset.py [--budget 70] [--only NAME ...] [--search]

The reference is nanoGPT's CPU recipe (4 layers, 4 heads, 128 channels, block 64, batch 12,
2000 iterations, dropout 0, fp32; its README reports val loss ~1.88 in about 70 s here).
Each candidate first times 20 steps, then gets as many steps as fit the budget (its cosine
schedule ends there). Prints, per recipe: wall time, steps, best val loss.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpt40k.training.config import build_config  # noqa: E402
from gpt40k.training.trainer import Trainer  # noqa: E402

NANOGPT = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000, lr=1e-3,
               min_lr=1e-4, warmup_iters=100, dropout=0.0, dtype="float32", eval_interval=250, eval_iters=20)
RECIPES = {
    "nanogpt-cpu (reference)": ("cpu", NANOGPT),
    "cpu preset": ("cpu", {}),
}
# Candidates tried with --search (each at the budget's step count; see the README for results).
SEARCH = {
    "b32-lr2e-3": ("cpu", dict(batch_size=32, lr=2e-3)),
    "b64-lr2e-3": ("cpu", dict(batch_size=64, lr=2e-3)),
    "block128-b16": ("cpu", dict(block_size=128, batch_size=16, lr=2e-3)),
    "4L-192-b32": ("cpu", dict(n_layer=4, n_head=6, n_embd=192, batch_size=32, lr=2e-3)),
}


def steps_for_budget(preset: str, overrides: dict, corpus: str, out: Path, budget: float) -> int:
    """Steps that fit ``budget`` seconds, from the time of 20 steps (evaluations included)."""
    probe = {**overrides, "max_iters": 20, "eval_interval": 10_000, "eval_iters": 1}
    wall, _, _ = run(preset, probe, corpus, out / "probe")
    per_step = wall / 20
    n = int(budget / per_step)
    evals = n // overrides.get("eval_interval", 250) + 1
    eval_cost = evals * 2 * overrides.get("eval_iters", 20) * per_step / 3  # forward only: ~1/3 of a step
    return max(100, int((budget - eval_cost) / per_step) // 50 * 50)


def run(preset: str, overrides: dict, corpus: str, out: Path) -> tuple[float, int, float]:
    cfg = build_config(preset, {"data": [corpus], "out": str(out), "sample_chars": 0, "patience": 0, **overrides})
    start = time.time()
    shutil.rmtree(out, ignore_errors=True)
    with redirect_stderr(io.StringIO()):  # no progress bars in the table
        trainer = Trainer(cfg, log=lambda *a, **k: None)
        result = trainer.run()
    return time.time() - start, result.step, result.best_val_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/corpus/tinyshakespeare"))
    parser.add_argument("--only", nargs="*", help="recipe names to run")
    parser.add_argument("--out", default="/tmp/gpt40k-cpu-preset")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds per candidate with --search (default: the reference's own time)")
    parser.add_argument("--search", action="store_true", help="also run the candidate recipes")
    args = parser.parse_args()
    print(f"{'recipe':<28} {'wall s':>7} {'steps':>6} {'best val':>9}", flush=True)
    recipes = {**RECIPES, **(SEARCH if args.search else {})}
    budget = args.budget
    for name, (preset, overrides) in recipes.items():
        if args.only and name not in args.only:
            continue
        out = Path(args.out) / name.split()[0]
        if name in SEARCH:
            overrides = {**overrides, "max_iters": steps_for_budget(preset, overrides, args.corpus, out, budget)}
        wall, steps, best = run(preset, overrides, args.corpus, out)
        if budget is None:
            budget = wall  # the reference's wall time is every candidate's budget
        print(f"{name:<28} {wall:>7.1f} {steps:>6} {best:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
