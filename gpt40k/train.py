"""``python train.py``: the training command line, generated from TrainConfig."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .errors import ConfigError, GPT40kError
from .files import ARGS_FILE, read_checked_json
from .training.config import PRESETS, TrainConfig, add_config_arguments, build_config
from .training.resume import carry_run, fetch_from_hub, find_resumable

PUSH_FAILED = 3  # training finished and is saved, but the upload did not happen

EXAMPLES = """examples:
  python train.py --data books/ --preset cpu --out runs/mine
  python train.py --data books/ --preset seed --out /kaggle/working/run1
  python train.py --resume /kaggle/working/run1
  python train.py --data books/ --preset cpu --out runs/mine --overwrite   # start runs/mine again
  python train.py --data books/ --preset seed --out run1 --push-to-hub user/gpt40k-mine --push-training-state
  python train.py --resume hub:user/gpt40k-mine --data books/
  torchrun --nproc_per_node=2 train.py --data books/ --preset seed --out run2
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train a character-level GPT on your own books.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=list(PRESETS), default="seed",
                        help="starting values for every flag below (default: seed)")
    parser.add_argument("--resume", metavar="RUN",
                        help="continue a run from its folder (or its latest/ checkpoint), or from a Hub "
                             "repository pushed with --push-training-state: hub:USER/NAME[@rev]; "
                             "flags given override the saved ones")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in an --out folder that holds an earlier run, deleting that run's "
                             "checkpoints, snapshots and metrics (without it, such a folder is refused)")
    add_config_arguments(parser)
    return parser


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, Path | None]:
    given = {k: v for k, v in vars(args).items() if k not in ("preset", "resume", "overwrite")}
    if args.resume is None:
        if not given.get("data"):
            raise ConfigError("no training data: pass --data with text files, a folder or a glob "
                              "(or --resume RUN to continue a run)")
        return build_config(args.preset, given), None
    resume = args.resume
    if resume.startswith("hub:"):  # a run pushed with --push-training-state, e.g. on another machine
        resume = str(fetch_from_hub(resume[len("hub:"):], given.get("out")))
    folder, run_dir = find_resumable(resume)
    args_path = folder / ARGS_FILE
    try:
        saved = read_checked_json(folder, ARGS_FILE)
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
        saved["out"] = str(run_dir)
        cfg = TrainConfig(**{**saved, **given})
    except (OSError, ValueError, TypeError) as e:  # missing, edited by hand, from another version
        raise ConfigError(f"{args_path} cannot be read as this run's arguments ({e}). Restore it, or start a "
                          "new run with --data ... --out NEW_FOLDER") from None
    carry_run(run_dir, Path(cfg.out))  # --out elsewhere: the run's history comes along
    return cfg, folder


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .training.trainer import Trainer  # after parsing: --help stays fast

    trainer = None
    try:
        cfg, resume_from = resolve_config(args)
        if args.overwrite and resume_from is not None:
            raise ConfigError("--overwrite starts a run again and --resume continues it: give one of them")
        trainer = Trainer(cfg, resume_from, overwrite=args.overwrite)
        result = trainer.run()
    except GPT40kError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if trainer is not None:
            trainer.close()
    if result.signal_name:  # the shell convention: 128 + the signal's number
        return 128 + int(getattr(signal, result.signal_name))
    return PUSH_FAILED if result.push_error else 0


if __name__ == "__main__":
    raise SystemExit(main())
