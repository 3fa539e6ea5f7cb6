"""The loss curve picture, drawn from metrics.jsonl with matplotlib's file-only backend."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_file, checked_file


def parse_metrics(text: str) -> tuple[list[dict], int]:
    """(the evaluations in metrics.jsonl's text, how many non-empty lines are none: torn by a kill, or foreign)."""
    rows, torn = [], 0
    for line in filter(str.strip, text.splitlines()):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("step"), int) and isinstance(row.get("val_loss"), (int, float)):
            rows.append(row)
        else:
            torn += 1
    return rows, torn


def read_metrics(path: str | Path) -> list[dict]:
    """The evaluations logged in metrics.jsonl; a line that is not one is left out."""
    path = Path(path)
    if not path.exists():
        return []
    return parse_metrics(checked_file(path.parent, path.name).read_text(encoding="utf-8", errors="replace"))[0]


def plot_loss_curve(metrics_path: str | Path, png_path: str | Path, title: str = "GPT-40k training") -> None:
    """Train and val loss against step; the best val loss marked. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and safe in any thread
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, [r["train_loss"] for r in rows], label="train", color="#4c72b0")
    ax.plot(steps, [r["val_loss"] for r in rows], label="val", color="#c44e52")
    best = min(rows, key=lambda r: r["val_loss"])
    ax.scatter([best["step"]], [best["val_loss"]], color="#c44e52", zorder=3,
               label=f"best val {best['val_loss']:.3f} @ {best['step']}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/char)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_file(png_path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
