"""Loss of checkpoints on text they never saw: does what they learned carry over?

    python bench/heldout_loss.py TEXT_FILE CHECKPOINT [CHECKPOINT ...] [--max-chars 300000]

The text is cut into windows of block_size + 1 characters; every position of every window is
scored (so most positions see a long context, like the val loss). Characters a model's
vocabulary lacks are dropped first, and their share is printed.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt40k.checkpoint import load  # noqa: E402
from gpt40k.data import read_books  # noqa: E402


@torch.no_grad()
def heldout_loss(checkpoint: str, text: str, batch: int = 32) -> tuple[float, float]:
    """(mean cross-entropy in nats per character, share of characters dropped)."""
    ckpt = load(checkpoint)
    model, tok = ckpt.model, ckpt.tokenizer
    encoded = tok.encode_array(text, unknown="drop")
    ids = torch.from_numpy(encoded.ids.astype("int64"))
    dropped = 1 - len(ids) / max(1, len(text))
    span = model.config.block_size + 1
    windows = ids[: len(ids) // span * span].view(-1, span)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        loss = model(w[:, :-1], w[:, 1:]).loss
        total += loss.item() * w[:, 1:].numel()
        count += w[:, 1:].numel()
    return total / count, dropped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", help="a text file (or folder) the checkpoints were not trained on")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--max-chars", type=int, default=300_000)
    args = p.parse_args()
    books, _ = read_books(args.text)
    text = "".join(b.text for b in books)[: args.max_chars]
    print(f"| checkpoint | loss on {Path(args.text).name} ({len(text):,} chars) | bits/char | chars dropped |")
    print("|---|---|---|---|")
    for ckpt in args.checkpoints:
        loss, dropped = heldout_loss(ckpt, text)
        print(f"| {ckpt} | {loss:.4f} | {loss / math.log(2):.3f} | {dropped:.2%} |", flush=True)


if __name__ == "__main__":
    main()
