"""A checkpoint: a model with its tokenizer, in one folder, Hugging Face style.

    from gpt40k import load
    ckpt = load("checkpoints/grimfuture")    # or a run folder, or "user/name@rev" on the Hub
    ckpt.model, ckpt.tokenizer, ckpt.folder

A checkpoint folder holds config.json, model.safetensors and tokenizer.json (weights never go
through pickle); ``GPT.from_pretrained`` and ``CharTokenizer.from_pretrained`` read one half
each. A training run's folder (names in files.py) holds two of them:

    run/best/      the lowest validation loss so far (what the app and the Hub get)
    run/latest/    the last save, plus training_state.pt, which --resume needs

Every folder is written atomically (files.atomic_folder): a kill at any moment leaves a
complete checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import CheckpointError
from .files import SNAPSHOT_INFO_FILE, STATE_FILE, TOKENIZER_FILE, atomic_folder, checked_file, disk_errors, write_json
from .hub.client import locate
from .model.model import GPT
from .model.pretrained import read_model, write_model
from .model.tokenizer import CharTokenizer


@dataclass
class Checkpoint:
    model: GPT
    tokenizer: CharTokenizer
    folder: Path  # where it was read from (a Hub model: its folder in the Hugging Face cache)


def load(name_or_path: str | Path, *, device: str | torch.device = "cpu", revision: str | None = None,
         token: str | bool | None = None, cache_dir: str | None = None) -> Checkpoint:
    """Model and tokenizer of a checkpoint folder, a run folder (its best/) or a Hub id ``user/name[@rev]``,
    every piece checked: each file there, readable, and belonging with the others."""
    folder = locate(name_or_path, revision=revision, token=token, cache_dir=cache_dir)
    try:
        tokenizer = CharTokenizer.load(folder / TOKENIZER_FILE)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    model = read_model(GPT, folder, device)
    if len(tokenizer) != model.config.vocab_size:
        raise CheckpointError(f"{folder}: tokenizer has {len(tokenizer)} characters but config.json says "
                              f"vocab_size={model.config.vocab_size}; the files do not belong together")
    return Checkpoint(model, tokenizer, folder)


def save_checkpoint(model: GPT, folder: str | Path, tokenizer: CharTokenizer | None = None,
                    dtype: torch.dtype | None = None, info: dict | None = None) -> Path:
    """A checkpoint folder, atomically; ``dtype`` converts the weights (float16 for snapshots, half
    the size) and ``info`` is written as snapshot.json beside them."""
    with disk_errors(folder), atomic_folder(folder) as tmp:
        write_model(model, tmp, dtype)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if info is not None:
            write_json(tmp / SNAPSHOT_INFO_FILE, info)
    return Path(folder)


def save_training_state(folder: Path, state: dict) -> None:
    """Optimizer, RNG and step, beside the weights of latest/ (inside its atomic folder)."""
    torch.save(state, folder / STATE_FILE)


def load_training_state(folder: Path) -> dict:
    """The optimizer/RNG/step state; weights_only=True, so loading it runs no pickled code."""
    path = folder / STATE_FILE
    try:
        path = checked_file(folder, STATE_FILE)
    except FileNotFoundError:
        raise CheckpointError(f"no {STATE_FILE} in {folder}: this checkpoint cannot be resumed "
                              "(only the latest/ folder of a run, or a push with --push-training-state, can)") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged or hostile files
        raise CheckpointError(f"{path} is corrupt or not a GPT-40k training state: {e}") from None
