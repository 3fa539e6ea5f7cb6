"""Put a training run into checkpoints/NAME the way the page ships it: the best checkpoint with its
model card and loss curve, and a few of the run's snapshots (its training timeline, half precision).

    python bench/ship_run.py runs/grimfuture grimfuture --snapshots 60 180 360 --note-file note.md

The card is the one every run gets (gpt40k.card), with the note (markdown: where the books come from,
how the recipe was chosen) as a section of its own. An existing checkpoints/NAME is refused unless
--replace is given; nothing else in checkpoints/ is touched. Prints the folder's size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt40k.hub.card import write_card  # noqa: E402
from gpt40k.files import (BEST_DIR, CHECKPOINT_FILES, SNAPSHOT_INFO_FILE, SNAPSHOTS_DIR,  # noqa: E402
                          atomic_folder)


def ship(run: Path, dest: Path, steps: list[int], note: str | None, title: str | None, description: str | None) -> int:
    with atomic_folder(dest) as tmp:
        for name in CHECKPOINT_FILES:
            shutil.copyfile(run / BEST_DIR / name, tmp / name)
        for step in steps:
            snap = run / SNAPSHOTS_DIR / f"step-{step:06d}"
            if not (snap / SNAPSHOT_INFO_FILE).is_file():
                raise SystemExit(f"error: {snap} is no snapshot of this run (train.py --snapshot-every makes them)")
            shutil.copytree(snap, tmp / SNAPSHOTS_DIR / snap.name)
        write_card(tmp, run, title=title, note=note, description=description)
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a finished run folder (train.py --out)")
    p.add_argument("name", help="the folder's name under checkpoints/ (its name in the page's menu)")
    p.add_argument("--snapshots", type=int, nargs="*", default=[], help="steps of the snapshots to keep")
    p.add_argument("--note-file", type=Path, help="markdown added to the model card")
    p.add_argument("--title", help="the card's title (default: GPT-40k NAME)")
    p.add_argument("--description", help="one line on the model, shown on the page's Write tab")
    p.add_argument("--replace", action="store_true", help="replace an existing checkpoints/NAME")
    args = p.parse_args()
    dest = ROOT / "checkpoints" / args.name
    if dest.exists() and not args.replace:
        print(f"error: {dest} exists: pass --replace to replace it", file=sys.stderr)
        return 1
    note = args.note_file.read_text(encoding="utf-8") if args.note_file else None
    size = ship(args.run, dest, args.snapshots, note, args.title or f"GPT-40k {args.name}", args.description)
    print(f"wrote {dest}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
