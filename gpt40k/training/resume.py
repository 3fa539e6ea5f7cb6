"""What --resume needs beyond the weights: the step, the best loss so far, the optimizer and
every random number generator, so a resumed run continues as if it had never stopped; and where
to find it (a run folder, or a Hub repository pushed with --push-training-state)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..checkpoint import load_training_state, save_training_state
from ..errors import CheckpointError
from ..files import (
    ARGS_FILE,
    BEST_DIR,
    CARD_FILE,
    CHECKPOINT_FILES,
    CONFIG_FILE,
    CORPUS_FILE,
    CURVE_FILE,
    LATEST_DIR,
    METRICS_FILE,
    SNAPSHOTS_DIR,
    STATE_FILE,
    atomic_folder,
    claim_run_folder,
    disk_errors,
    holds_run,
    kept_copy,
    write_json,
)
from ..hub.client import locate_resumable, parse_repo_ref
from ..model.pretrained import write_model


@dataclass
class Progress:
    step: int = 0
    elapsed_s: float = 0.0  # training time so far, over all sessions
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the best one (for --patience)


def rng_states(batch_gen: torch.Generator, device: torch.device, ranks) -> list[dict]:
    """Every rank's RNG states, gathered on all ranks (a collective call under DDP)."""
    mine = {"torch": torch.get_rng_state(), "batches": batch_gen.get_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    if not ranks.enabled:
        return [mine]
    gathered = [None] * ranks.world_size
    dist.all_gather_object(gathered, mine)
    return gathered


def write_latest(folder: Path, model, tokenizer, cfg, progress: Progress, optimizer, scaler,
                 rngs: list[dict]) -> None:
    """The resumable checkpoint, atomically: weights, tokenizer, arguments and the training state."""
    state = {**asdict(progress), "rng": rngs, "optimizer": optimizer.state_dict(),
             "scaler": scaler.state_dict() if scaler.is_enabled() else None}
    with disk_errors(folder), atomic_folder(folder) as tmp:
        write_model(model, tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / ARGS_FILE, cfg.to_dict())
        save_training_state(tmp, state)


def restore(state: dict, optimizer, scaler, batch_gen: torch.Generator, device: torch.device, ranks,
            seed: int, say, folder: Path | None = None) -> Progress:
    """Put the optimizer and this rank's generators back as they were; the progress so far."""
    try:
        return _restore(state, optimizer, scaler, batch_gen, device, ranks, seed, say)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        where = Path(folder or ".") / STATE_FILE
        raise CheckpointError(f"{where} is damaged or was not written by this version of GPT-40k "
                              f"({type(e).__name__}: {e}). Resume from another copy of the run, or start it "
                              "again with --overwrite") from None


def _restore(state, optimizer, scaler, batch_gen, device, ranks, seed, say) -> Progress:
    if not isinstance(state, dict):
        raise TypeError(f"the state is a {type(state).__name__}, not a dict")
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    progress = Progress(int(state["step"]), float(state["elapsed_s"]), state["best_val"], state["best_step"],
                        int(state["bad_evals"]))
    if progress.step < 0 or (progress.best_val is not None and not isinstance(progress.best_val, float)):
        raise ValueError(f"step {progress.step}, best val {progress.best_val!r}")
    rngs = state["rng"]
    if len(rngs) != ranks.world_size:
        say(f"note: the run was saved with {len(rngs)} process(es) and resumes with {ranks.world_size}; "
            "batches are re-seeded, so the losses will not match an uninterrupted run exactly")
        batch_gen.manual_seed(seed + 7919 * progress.step + ranks.rank)
        return progress
    rng = rngs[ranks.rank]
    torch.set_rng_state(rng["torch"])
    batch_gen.set_state(rng["batches"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)
    return progress


def fetch_from_hub(ref: str, out: str | None, say=print) -> Path:
    """Download a Hub repository's ``last-checkpoint/`` (the run's latest/) and its best checkpoint
    (the repository's root) into a local run folder; return the folder. A local copy of the same run
    that is as far along or further is kept and used instead."""
    downloaded = locate_resumable(ref)  # .../snapshot/last-checkpoint; the root holds the best checkpoint
    run_dir = Path(out or Path("runs") / parse_repo_ref(ref)[0].split("/")[1])
    claim_run_folder(run_dir, resuming=True, overwrite=False)  # never write over a user's files
    local = run_dir / LATEST_DIR
    if (local / STATE_FILE).is_file():
        hub_step, local_step = _step_of(downloaded), _step_of(local)
        if local_step is not None and hub_step is not None and local_step >= hub_step:
            say(f"note: {local} is at step {local_step}, the Hub's copy at step {hub_step}: continuing from {local}")
            return run_dir
    with disk_errors(run_dir / LATEST_DIR), atomic_folder(run_dir / LATEST_DIR) as tmp:
        shutil.copytree(downloaded, tmp, dirs_exist_ok=True)
        (tmp / METRICS_FILE).unlink(missing_ok=True)  # it belongs beside latest/, not in it
    if (downloaded / METRICS_FILE).exists():
        shutil.copyfile(downloaded / METRICS_FILE, run_dir / METRICS_FILE)
    if (downloaded.parent / CONFIG_FILE).is_file():  # the best so far: a session with no new best still has one
        with disk_errors(run_dir / BEST_DIR), atomic_folder(run_dir / BEST_DIR) as tmp:
            for name in (*CHECKPOINT_FILES, CARD_FILE, CURVE_FILE):
                if (downloaded.parent / name).is_file():
                    shutil.copyfile(downloaded.parent / name, tmp / name)
    return run_dir


def _step_of(folder: Path) -> int | None:
    try:
        return int(load_training_state(folder)["step"])
    except (CheckpointError, KeyError, TypeError, ValueError):  # damaged: resuming from it says so in detail
        return None


def find_resumable(path: str) -> tuple[Path, Path]:
    """(checkpoint folder holding training_state.pt, the run folder it belongs to)."""
    path = Path(path).expanduser()
    for folder in (path / LATEST_DIR, kept_copy(path / LATEST_DIR), path):
        if (folder / STATE_FILE).is_file():
            return folder, (path if folder != path else path.parent)
    raise CheckpointError(f"{path} holds nothing to resume: expected a run folder with {LATEST_DIR}/{STATE_FILE}")


def carry_run(src: Path, dest: Path) -> None:
    """Resuming a run into another --out (its own folder read-only, as Kaggle's kept output under
    /kaggle/input is): its best checkpoint, metrics, snapshots and corpus record come along, so the
    curve, the card and the timeline go on where they were. The training state is read from ``src``."""
    if dest.resolve() == src.resolve() or holds_run(dest):
        return
    claim_run_folder(dest, resuming=True, overwrite=False)
    with disk_errors(dest / BEST_DIR):
        dest.mkdir(parents=True, exist_ok=True)
        for name in (METRICS_FILE, CORPUS_FILE, CURVE_FILE):
            if (src / name).is_file():
                shutil.copyfile(src / name, dest / name)
        for name in (BEST_DIR, SNAPSHOTS_DIR):
            if (src / name).is_dir():
                shutil.copytree(src / name, dest / name)
