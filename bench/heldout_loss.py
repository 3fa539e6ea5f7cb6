"""Loss of checkpoints on text they never saw: does what they learned carry over?

    python bench/heldout_loss.py TEXT CHECKPOINT [CHECKPOINT ...] [--max-chars 300000] [--val-split]
                                 [--by-position 32] [--slides 64 128 --slide-chars 40000]

The text is cut into windows of block_size + 1 characters; every position of every window is
scored (so most positions see a long context, like the val loss). Characters a model's
vocabulary lacks are dropped first, and their share is printed. ``--val-split`` scores only the
validation split of TEXT, the last 10% of each book as train.py cuts it: the model's own books,
the part it was not trained on.

How much context does a model put to use? ``--by-position N`` adds the loss at positions 0..N-1 of
the windows, N..2N-1, and so on (position p had p characters before it). ``--slides`` reads the
first ``--slide-chars`` characters one at a time through generation's sliding window, as sampling
them would, once per slide given: the loss of each shows what a larger slide (fewer, cheaper
window jumps, less context just after one) costs. The default slide rests on these two figures
(gpt40k/generate/sampling.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt40k.checkpoint import load  # noqa: E402
from gpt40k.training.data import prepare_corpus, read_books  # noqa: E402
from gpt40k.errors import GPT40kError  # noqa: E402
from gpt40k.generate.sampling import SlidingWindow, check_slide  # noqa: E402


def encode(text: str, tokenizer, val_split_of: str | None = None) -> tuple[torch.Tensor, float]:
    """(ids of ``text``, or of the validation split of the corpus ``val_split_of``; share of characters dropped)."""
    if val_split_of is None:
        ids = tokenizer.encode_array(text, unknown="drop").ids
        dropped = 1 - len(ids) / max(1, len(text))
    else:
        data = prepare_corpus(val_split_of, tokenizer=tokenizer)
        ids, dropped = data.val, sum(data.dropped_chars.values()) / max(1, data.n_chars)
    return torch.from_numpy(ids.astype("int64")), dropped


@torch.inference_mode()
def position_losses(model, ids: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Mean cross-entropy (nats) at each position of the text's block_size + 1 windows."""
    span = model.config.block_size + 1
    windows = ids[: len(ids) // span * span].view(-1, span)
    if len(windows) == 0:
        sys.exit(f"the text has {len(ids):,} characters the model knows: it needs at least {span}")
    total = torch.zeros(span - 1)
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        logits = model(w[:, :-1]).logits.float()
        total += F.cross_entropy(logits.transpose(1, 2), w[:, 1:], reduction="none").sum(0)
    return total / len(windows)


@torch.inference_mode()
def window_loss(model, ids: torch.Tensor, slide: int) -> float:
    """Mean cross-entropy (nats) of each character given what generation's window holds before it."""
    window = SlidingWindow(model, batch_size=1, slide=slide)
    logits = window.feed(ids[None, :1]).logits
    total = 0.0
    for i in tqdm(range(1, len(ids)), desc=f"slide {slide}", leave=False):
        total += F.cross_entropy(logits[0, -1:].float(), ids[i:i + 1]).item()
        logits = window.feed(ids[None, i:i + 1]).logits
    return total / max(1, len(ids) - 1)


def print_by_position(name: str, losses: torch.Tensor, width: int) -> None:
    print(f"\n{name}, loss by position in the window (the context a character had):\n")
    print("| positions | loss | bits/char |\n|---|---|---|")
    for start in range(0, len(losses), width):
        loss = losses[start:start + width].mean().item()
        print(f"| {start}-{min(start + width, len(losses)) - 1} | {loss:.4f} | {loss / math.log(2):.3f} |")


def check_slides(name: str, model, slides: list[int]) -> None:
    try:
        for slide in slides:
            check_slide(slide, model.config.block_size)
    except GPT40kError as e:
        sys.exit(f"error: {name}: {e}")


def print_window_losses(name: str, model, ids: torch.Tensor, slides: list[int]) -> None:
    block = model.config.block_size
    print(f"\n{name}, loss through generation's window ({len(ids):,} characters):\n")
    print("| slide | context | loss | bits/char |\n|---|---|---|---|")
    for slide in slides:
        loss = window_loss(model, ids, slide)
        print(f"| {slide} | {block - slide + 1}-{block} | {loss:.4f} | {loss / math.log(2):.3f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", help="a text file (or folder) the checkpoints were not trained on")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--max-chars", type=int, default=300_000, help="characters scored, at most")
    p.add_argument("--val-split", action="store_true", help="only the last 10%% of each book, as train.py splits it")
    p.add_argument("--by-position", type=int, metavar="N", help="also the loss per N positions of the window")
    p.add_argument("--slides", type=int, nargs="*", default=[], help="also the loss through generation's window")
    p.add_argument("--slide-chars", type=int, default=40_000, help="characters read through the window per slide")
    args = p.parse_args()
    if args.by_position is not None and args.by_position < 1:
        p.error(f"--by-position takes a number of positions >= 1, got {args.by_position}")
    books, _ = read_books(args.text)
    text = "".join(b.text for b in books)
    what = f"the val split of {Path(args.text).name}" if args.val_split else Path(args.text).name
    print(f"| checkpoint | loss on {what} | characters | bits/char | chars dropped |")
    print("|---|---|---|---|---|")
    scored = []
    for name in args.checkpoints:
        try:
            ckpt = load(name)
        except GPT40kError as e:
            sys.exit(f"error: {e}")
        check_slides(name, ckpt.model, args.slides)
        ids, dropped = encode(text, ckpt.tokenizer, args.text if args.val_split else None)
        ids = ids[: args.max_chars]
        losses = position_losses(ckpt.model.eval(), ids)
        loss = losses.mean().item()
        print(f"| {name} | {loss:.4f} | {len(ids):,} | {loss / math.log(2):.3f} | {dropped:.2%} |", flush=True)
        scored.append((name, ckpt.model, ids, losses))
    for name, model, ids, losses in scored:
        if args.by_position:
            print_by_position(name, losses, args.by_position)
        if args.slides:
            print_window_losses(name, model, ids[: args.slide_chars], args.slides)


if __name__ == "__main__":
    main()
