"""Publishing a training run: its best checkpoint with a fresh model card (and, if asked, the
training state, so another machine can --resume), or a snapshot on a ``step-N`` branch."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..checkpoint import load_training_state
from ..errors import HubError
from ..files import CARD_FILE, CHECKPOINT_FILES, CURVE_FILE, LATEST_DIR, METRICS_FILE, RESUME_DIR, STATE_FILE
from .card import build_card, write_card
from .client import find_checkpoint, parse_repo_ref, push_folder, write_api


def push_run(run_dir: str | Path, repo_id: str, *, private: bool = False, with_training_state: bool = False,
             token: str | None = None) -> str:
    """Push a run's best checkpoint, with a fresh model card, to the main branch of ``repo_id``.
    Nothing is written locally: the card goes into the upload's staging copy, so a read-only run
    folder (Kaggle's /kaggle/input) can be pushed and a failed push leaves every file as it was."""
    run_dir = Path(run_dir)
    parse_repo_ref(repo_id)
    _, token = write_api(token, f"pushing to {repo_id}")  # no token: say so before any work
    best = find_checkpoint(run_dir)
    run = run_dir if best != run_dir else None
    card = str(build_card(best, run, repo_id))
    message = "Upload GPT-40k model"
    latest = run_dir / LATEST_DIR
    if (latest / STATE_FILE).is_file():
        state = load_training_state(latest)
        if state.get("best_val") is not None:
            message = (f"Best checkpoint: step {state['best_step']}, val loss {state['best_val']:.4f} "
                       f"(trained {state['step']} steps)")
    elif with_training_state:
        raise HubError(f"{run_dir} has no {LATEST_DIR}/{STATE_FILE} to push with the training state")
    extra = {}
    if run is not None and (run / CURVE_FILE).is_file():
        extra[CURVE_FILE] = run / CURVE_FILE
    if with_training_state and (run_dir / METRICS_FILE).is_file():  # the loss curve goes on after a resume
        extra[f"{RESUME_DIR}/{METRICS_FILE}"] = run_dir / METRICS_FILE
    return push_folder(best, repo_id, commit_message=message, private=private, token=token,
                       training_state=latest if with_training_state else None, extra_files=extra,
                       texts={CARD_FILE: card})


def push_snapshot(run_dir: str | Path, repo_id: str, step: int, val_loss: float, *, private: bool = False,
                  token: str | None = None) -> str:
    """Push the run's latest weights to the branch ``step-N`` (for --push-every)."""
    run_dir = Path(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / f"step-{step}"
        snapshot.mkdir()
        for name in CHECKPOINT_FILES:
            shutil.copyfile(run_dir / LATEST_DIR / name, snapshot / name)
        write_card(snapshot, run_dir, repo_id)
        return push_folder(snapshot, repo_id, branch=f"step-{step}", private=private, token=token,
                           commit_message=f"Snapshot at step {step}, val loss {val_loss:.4f}")
