"""What --resume needs beyond the weights: the step, the best loss so far, the optimizer and
every random number generator, so a resumed run continues as if it had never stopped; and where
to find it (a run folder, or a Hub repository pushed with --push-training-state)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .checkpoint import save_training_state
from .errors import CheckpointError
from .files import (ARGS_FILE, LATEST_DIR, METRICS_FILE, STATE_FILE, atomic_folder, disk_errors, kept_copy,
                    write_json)
from .hub import locate_resumable, parse_repo_ref
from .model import write_model


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
            seed: int, say) -> Progress:
    """Put the optimizer and this rank's generators back as they were; the progress so far."""
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    progress = Progress(state["step"], state["elapsed_s"], state["best_val"], state["best_step"], state["bad_evals"])
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


def fetch_from_hub(ref: str, out: str | None) -> Path:
    """Download ``last-checkpoint/`` of a Hub repository into a local run folder; return the folder."""
    downloaded = locate_resumable(ref)
    run_dir = Path(out or Path("runs") / parse_repo_ref(ref)[0].split("/")[1])
    with atomic_folder(run_dir / LATEST_DIR) as tmp:
        shutil.copytree(downloaded, tmp, dirs_exist_ok=True)
        (tmp / METRICS_FILE).unlink(missing_ok=True)  # it belongs beside latest/, not in it
    if (downloaded / METRICS_FILE).exists():
        shutil.copyfile(downloaded / METRICS_FILE, run_dir / METRICS_FILE)
    return run_dir


def find_resumable(path: str) -> tuple[Path, Path]:
    """(checkpoint folder holding training_state.pt, the run folder it belongs to)."""
    path = Path(path).expanduser()
    for folder in (path / LATEST_DIR, kept_copy(path / LATEST_DIR), path):
        if (folder / STATE_FILE).is_file():
            return folder, (path if folder != path else path.parent)
    raise CheckpointError(f"{path} holds nothing to resume: expected a run folder with {LATEST_DIR}/{STATE_FILE}")
