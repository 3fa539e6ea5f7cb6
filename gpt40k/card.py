"""(Re)write the model card of a run's best checkpoint.

    python -m gpt40k.card RUN [--checkpoint FOLDER] [--repo-id USER/NAME] [--note-file NOTE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CheckpointError, GPT40kError
from .hub.card import write_card
from .hub.client import find_checkpoint


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpt40k.card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder")
    p.add_argument("--checkpoint", help="the checkpoint folder to write into (default: RUN/best)")
    p.add_argument("--repo-id", help="the Hub repository the card will live in (for the usage examples)")
    p.add_argument("--title", help="the card's title (default: the repository or run name)")
    p.add_argument("--note-file", help="a markdown file whose text is added to the card")
    p.add_argument("--description", help="one line on the model (the page shows it on its Write tab)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m gpt40k.card RUN``: (re)write the model card of a run's best checkpoint."""
    args = build_parser().parse_args(argv)
    try:
        path = _card_command(args)
    except GPT40kError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _card_command(args) -> Path:
    run = Path(args.run)
    if not run.is_dir():
        raise CheckpointError(f"{run} is not a folder: give the run folder that train.py --out made")
    note = None
    if args.note_file:
        try:
            note = Path(args.note_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise CheckpointError(f"--note-file {args.note_file} cannot be read ({why}): give a UTF-8 markdown "
                                  "file that exists") from None
    checkpoint = Path(args.checkpoint) if args.checkpoint else find_checkpoint(run)
    try:
        return write_card(checkpoint, run, args.repo_id, args.title, note, args.description)
    except OSError as e:
        raise CheckpointError(f"cannot write the card into {checkpoint}: {e.strerror or e}. Copy the run to a "
                              "writable folder (on Kaggle: /kaggle/working), or push it as it is: python -m "
                              "gpt40k.push RUN USER/NAME writes nothing locally") from None


if __name__ == "__main__":
    raise SystemExit(main())
