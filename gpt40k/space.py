"""Deploy the demo as a Hugging Face Space, through the Hub's upload API (no git push).

    python -m gpt40k.space deploy USER/SPACE [--model USER/MODEL] [--hardware zero-a10g] [--private]

Creates the Space (Gradio SDK) or updates it, and uploads in one commit exactly what it needs:
app.py, the gpt40k package, requirements.txt, the shipped checkpoints and a README whose front
matter configures the Space. Binary files (weights, pictures) go through the upload API, which
stores them the way the Hub requires; a plain `git push` of this repository is refused. With
--model the Space variable GPT40K_MODEL makes it show that model; --token-secret also stores your
token as the Space secret HF_TOKEN (for a private model), and it is never printed.
"""

from __future__ import annotations

import argparse
import sys

from .errors import GPT40kError
from .hub.space import HARDWARE, deploy


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpt40k.space", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy", help="create or update a Space running this demo")
    d.add_argument("space", metavar="USER/SPACE", help="the Space (created if needed)")
    d.add_argument("--model", metavar="USER/MODEL[@REV]", help="the Hub model the page shows (default: the shipped one)")
    d.add_argument("--hardware", choices=HARDWARE, help="for a new Space; free accounts get zero-a10g (ZeroGPU) only")
    d.add_argument("--private", action="store_true", help="create the Space as private")
    d.add_argument("--token-secret", action="store_true",
                   help="store your token as the Space secret HF_TOKEN (needed to show a private model)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        url = deploy(args.space, model=args.model, hardware=args.hardware, private=args.private,
                     token_secret=args.token_secret)
    except GPT40kError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"deployed: {url}\nThe Space builds for a minute or two, then serves the page.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
