"""What --resume needs beyond the weights: the step, the best loss so far, the optimizer and
every random number generator, so a resumed run continues as if it had never stopped."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .checkpoint import save_training_state
from .files import ARGS_FILE, atomic_folder, write_json
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
    with atomic_folder(folder) as tmp:
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
