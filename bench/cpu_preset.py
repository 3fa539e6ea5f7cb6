"""How the `cpu` preset was chosen: recipes trained on tinyshakespeare, each in ~70 s of wall time.

    python bench/cpu_preset.py [--corpus ../shared/corpus/tinyshakespeare] [--only NAME ...]

Prints, per recipe: wall time, steps, best val loss. The reference is nanoGPT's CPU recipe
(4 layers, 4 heads, 128 channels, block 64, batch 12, 2000 iterations, dropout 0, fp32),
which its README reports at val loss ~1.88.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpt40k.config import build_config  # noqa: E402
from gpt40k.trainer import Trainer  # noqa: E402

NANOGPT = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000, lr=1e-3,
               min_lr=1e-4, warmup_iters=100, dropout=0.0, dtype="float32", eval_interval=250, eval_iters=20)
RECIPES = {
    "nanogpt-cpu (reference)": ("cpu", NANOGPT),
    "cpu preset": ("cpu", {}),
}


def run(preset: str, overrides: dict, corpus: str, out: Path) -> tuple[float, int, float]:
    cfg = build_config(preset, {"data": [corpus], "out": str(out), "sample_chars": 0, "patience": 0, **overrides})
    start = time.time()
    with redirect_stderr(io.StringIO()):  # no progress bars in the table
        trainer = Trainer(cfg, log=lambda *a, **k: None)
        result = trainer.run()
    return time.time() - start, result.step, result.best_val_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/corpus/tinyshakespeare"))
    parser.add_argument("--only", nargs="*", help="recipe names to run")
    parser.add_argument("--out", default="/tmp/gpt40k-cpu-preset")
    args = parser.parse_args()
    print(f"{'recipe':<28} {'wall s':>7} {'steps':>6} {'best val':>9}")
    for name, (preset, overrides) in RECIPES.items():
        if args.only and name not in args.only:
            continue
        wall, steps, best = run(preset, overrides, args.corpus, Path(args.out) / name.split()[0])
        print(f"{name:<28} {wall:>7.1f} {steps:>6} {best:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
