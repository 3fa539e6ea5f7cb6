"""What the page's "what each head does" views cost, on the shipped model (or --model).

    python bench/interpret.py [--model CHECKPOINT] [--chars 600] [--rounds 3]

Prints, for the CPU it runs on: the logit lens of one step (a whole forward pass over a full window,
as gpt40k.interpret.logit_lens computes it, and the page's own way, from the decoder's internals);
scoring every head's roles on the model's own text (what the Model tab and the badges show, cached
per checkpoint); the page's generation with and without the lens and the pushes; and a knocked-out
run beside a normal one. Medians of --rounds, the variants taking turns.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt40k import load  # noqa: E402
from gpt40k.app.request import GenerationRequest  # noqa: E402
from gpt40k.app.transcript import generate as page_generate  # noqa: E402
from gpt40k.device import describe_cpu  # noqa: E402
from gpt40k.interpret import ablated, head_roles, logit_lens, own_text  # noqa: E402
from gpt40k.app.registry import REFERENCE_CHARS  # noqa: E402  (the page's reference text)
from gpt40k.project import default_checkpoint  # noqa: E402


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def chars_per_s(model, tok, chars: int, explain: bool) -> float:
    req = GenerationRequest("In the grim darkness of the far future", chars, 0.8, seed=0)
    taken = seconds(lambda: [None for _ in page_generate(model, tok, req, explain=explain)])
    return chars / taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(default_checkpoint()))
    parser.add_argument("--chars", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ckpt = load(args.model)
    model, tok = ckpt.model, ckpt.tokenizer
    cfg = model.config
    print(f"machine: {describe_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"model: {args.model} ({model.num_parameters():,} parameters)\n")
    window = torch.tensor([own_text(model, tok, cfg.block_size - 1)])
    text = tok.decode(own_text(model, tok, REFERENCE_CHARS))
    knocked = ablated(model, [(1, 2)])
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        runs.setdefault("lens", []).append(seconds(lambda: logit_lens(model, window)))
        runs.setdefault("reference", []).append(seconds(lambda: own_text(model, tok, REFERENCE_CHARS)))
        runs.setdefault("roles", []).append(seconds(lambda: head_roles(model, tok, text)))
        runs.setdefault("plain", []).append(chars_per_s(model, tok, args.chars, explain=False))
        runs.setdefault("explain", []).append(chars_per_s(model, tok, args.chars, explain=True))
        runs.setdefault("knocked", []).append(chars_per_s(knocked, tok, args.chars, explain=True))
    med = {k: statistics.median(v) for k, v in runs.items()}
    rng = {k: f"{min(v):,.3g}-{max(v):,.3g}" for k, v in runs.items()}
    print("| measure | median | range | target |\n|---|---|---|---|")
    print(f"| logit lens of one step over a full window ({cfg.block_size} positions, interpret.logit_lens) "
          f"| {1000 * med['lens']:.1f} ms | {rng['lens']} s | <= 50 ms |")
    print(f"| the reference text: {REFERENCE_CHARS:,} characters of the model's own writing (interpret.own_text) "
          f"| {med['reference']:.2f} s | {rng['reference']} s | |")
    print(f"| every head's roles on it (interpret.head_roles) | {med['roles']:.2f} s | {rng['roles']} s "
          f"| with the text, <= 2 s (once per checkpoint) |")
    print(f"| the page's generation, {args.chars} characters, without the lens and pushes "
          f"| {med['plain']:,.0f} chars/s | {rng['plain']} | |")
    print(f"| the same with the lens and pushes of every step (what the page runs) | {med['explain']:,.0f} chars/s "
          f"| {rng['explain']} | |")
    print(f"| the same with L2H3 knocked out | {med['knocked']:,.0f} chars/s | {rng['knocked']} "
          "| as fast as a normal run |")


if __name__ == "__main__":
    main()
