"""Generate text from a checkpoint, streaming it to the terminal.

    python -m gpt40k.sample runs/mine --prompt "The Emperor" --chars 500 --temperature 0.8
    python -m gpt40k.sample runs/mine --prompt "The Emperor" --seed 0 --knock-out L2H3,L1H1
"""

from __future__ import annotations

import argparse
import sys

import torch

from .checkpoint import load
from .device import resolve_device
from .errors import ConfigError, GPT40kError
from .generate.sampling import check_sampling, check_slide, stream
from .interpret import ablated, head_name, heads_to_knock_out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpt40k.sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint folder, run folder (its best checkpoint) or Hub id user/name[@rev]")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--chars", type=int, default=500, help="characters to generate (default: 500)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; higher = wilder (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest characters only")
    p.add_argument("--top-p", type=float, default=None, help="sample among the likeliest characters whose "
                                                            "probabilities add up to p (nucleus)")
    p.add_argument("--seed", type=int, default=None, help="random seed, for reproducible text")
    p.add_argument("--slide", type=int, default=None,
                   help="characters the context window drops when it is full (default: block_size/2; "
                        "1 = always the last block_size characters, as the seed did, at its cost)")
    p.add_argument("--knock-out", metavar="HEADS", default=None,
                   help="heads that write nothing, e.g. L2H3,L1H1 (1-based layer and head, as on the page)")
    p.add_argument("--keep-only", metavar="HEADS", default=None,
                   help="knock out every head but these (e.g. L1H2,L4H6)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.chars < 0:
            raise ConfigError(f"--chars must not be negative, got {args.chars}")
        if args.seed is not None and not 0 <= args.seed < 2**63:
            raise ConfigError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
        check_sampling(args.temperature, args.top_k, args.top_p)
        device = resolve_device(args.device)
        ckpt = load(args.checkpoint, device=device)
        check_slide(args.slide, ckpt.model.config.block_size)
        knocked = knocked_out_heads(ckpt.model.config, args.knock_out, args.keep_only)
    except GPT40kError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    model, tok = ckpt.model, ckpt.tokenizer
    if knocked:
        model = ablated(model, knocked)
        print(f"note: knocked out {len(knocked)} of {model.config.n_layer * model.config.n_head} heads: "
              f"{', '.join(head_name(h) for h in knocked)}", file=sys.stderr)
    prompt = tok.encode_prompt(args.prompt, max_chars=model.config.block_size)
    for note in prompt.notes:
        print(f"note: {note}", file=sys.stderr)
    generator = torch.Generator(device)
    if args.seed is None:
        generator.seed()
    else:
        generator.manual_seed(args.seed)
    out = sys.stdout
    out.write(prompt.text)
    try:
        for step in stream(model, prompt.ids, args.chars, temperature=args.temperature, top_k=args.top_k,
                           top_p=args.top_p, generator=generator, slide=args.slide):
            out.write(tok.decode([int(step.token[0])]))
            out.flush()
    except KeyboardInterrupt:
        pass
    except GPT40kError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    out.write("\n")
    return 0


def knocked_out_heads(config, knock_out: str | None, keep_only: str | None) -> list:
    if knock_out and keep_only:
        raise ConfigError("give --knock-out or --keep-only, not both")
    return heads_to_knock_out(keep_only or knock_out, config.n_layer, config.n_head, keep_only=bool(keep_only))


if __name__ == "__main__":
    raise SystemExit(main())
