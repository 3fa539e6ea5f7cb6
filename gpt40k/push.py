"""Push a saved run (or checkpoint folder) to the Hugging Face Hub, with its model card.

    python -m gpt40k.push runs/mine user/gpt40k-mine [--private] [--with-training-state]
"""

from __future__ import annotations

import argparse
import sys

from .errors import GPT40kError
from .hub.publish import push_run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpt40k.push", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder (its best checkpoint is pushed) or a checkpoint folder")
    p.add_argument("repo_id", metavar="USER/NAME", help="the Hub repository (created if needed)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--with-training-state", action="store_true",
                   help="also push last-checkpoint/, so `train.py --resume hub:USER/NAME` can continue")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        url = push_run(args.run, args.repo_id, private=args.private, with_training_state=args.with_training_state)
    except GPT40kError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"pushed: {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
