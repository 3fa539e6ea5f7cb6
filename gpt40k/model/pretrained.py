"""Saving, loading and the Hub for a model, Hugging Face style, outside the model's file.

``PretrainedMixin`` gives a model class (``GPT``) save_pretrained / from_pretrained / push_to_hub,
as ``transformers.PreTrainedModel`` does: a folder holds config.json (the class's ``config_class``)
and model.safetensors (weights never go through pickle). Everything read is checked before it is
trusted: sizes and shapes against the config, from the file's header, before any tensor is built.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..files import CONFIG_FILE, WEIGHTS_FILE, atomic_file, checked_file, disk_errors, read_checked_json, write_json
from ..hub.client import locate, push_folder
from .config import MAX_PARAMS, GPTConfig

MAX_WEIGHT_BYTES = 4 * MAX_PARAMS + (1 << 20)


class PretrainedMixin:
    """save_pretrained / from_pretrained / push_to_hub for an ``nn.Module`` built from one config."""

    def save_pretrained(self, folder: str | Path, tokenizer=None) -> Path:
        """Write config.json and model.safetensors (and tokenizer.json when given) into ``folder``,
        made if needed; other files there stay. Each file is written atomically (whole, or as it was)."""
        folder = Path(folder)
        with disk_errors(folder):
            folder.mkdir(parents=True, exist_ok=True)
            write_model(self, folder)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, device: str | torch.device = "cpu",
                        revision: str | None = None, token: str | bool | None = None,
                        cache_dir: str | None = None):
        """The model of a folder, a run folder (its best checkpoint) or a Hub id ``user/name[@rev]``,
        in eval mode. Needs config.json and model.safetensors only; the tokenizer is
        ``CharTokenizer.from_pretrained`` and both together ``gpt40k.load``."""
        return read_model(cls, locate(name_or_path, revision=revision, token=token, cache_dir=cache_dir), device)

    def push_to_hub(self, repo_id: str, tokenizer=None, *, commit_message: str = "Upload GPT-40k model",
                    private: bool = False, branch: str | None = None, token: str | None = None) -> str:
        """Upload config.json and model.safetensors (and tokenizer.json) in one commit; the commit URL."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", tokenizer)
            return push_folder(folder, repo_id, commit_message=commit_message, private=private,
                               branch=branch, token=token)


def write_model(model: nn.Module, folder: Path, dtype: torch.dtype | None = None) -> None:
    """config.json and model.safetensors into an existing ``folder``; ``dtype`` (e.g. float16,
    half the size) converts the weights, and loading converts them back. Callers write it inside
    ``files.disk_errors`` (with the tokenizer and the rest), so a full disk is a message."""
    model = getattr(model, "module", model)  # unwrap DDP
    model = getattr(model, "_orig_mod", model)  # and torch.compile
    write_json(folder / CONFIG_FILE, model.config.to_dict())
    state = {k: v.detach().to(dtype or v.dtype).contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_file(folder / WEIGHTS_FILE) as tmp:
        save_file(state, tmp, metadata={"format": "pt"})


def read_config(folder: str | Path) -> GPTConfig:
    """The config.json of ``folder``, checked."""
    path = Path(folder) / CONFIG_FILE
    try:
        return GPTConfig.from_dict(read_checked_json(folder, CONFIG_FILE))
    except FileNotFoundError:
        raise CheckpointError(f"no {CONFIG_FILE} in {folder}: not a GPT-40k checkpoint folder") from None
    except (ValueError, TypeError) as e:  # CheckpointError (refused file) is a ValueError too
        raise CheckpointError(f"{path} is not a valid GPT-40k config: {e}") from None


def read_model(model_class: type[nn.Module], folder: Path, device: str | torch.device = "cpu") -> nn.Module:
    """The ``model_class`` model of a checkpoint folder, in eval mode on ``device``, every piece checked first."""
    config = read_config(folder)
    try:
        weights_path = checked_file(folder, WEIGHTS_FILE, max_bytes=MAX_WEIGHT_BYTES)
    except FileNotFoundError:
        raise CheckpointError(f"no {WEIGHTS_FILE} in {folder}: the checkpoint is incomplete") from None
    check_weights_match(model_class, config, weights_path)  # before anything the size of the config is built
    with unreadable_weights(weights_path):
        state = load_file(weights_path, device=str(device))
    model = model_class(config)
    model.load_state_dict(state)  # strict: every weight present, none left over
    return model.to(device).eval()


@contextmanager
def unreadable_weights(weights_path: Path):
    """A safetensors file that cannot be read becomes a CheckpointError that says what to do."""
    try:
        yield
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({e}); download or copy it again") from None


def check_weights_match(model_class: type[nn.Module], config: GPTConfig, weights_path: Path) -> None:
    """Compare the weights' names and shapes (read from the safetensors header, no tensor loaded)
    with what ``config`` builds (on the meta device: no memory), so a config that does not belong
    to its weights costs nothing."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in model_class(config).state_dict().items()}
    with unreadable_weights(weights_path), safe_open(weights_path, "pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    wrong = [k for k in expected.keys() & found.keys() if found[k] != expected[k]]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{weights_path} does not match config.json: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}, wrong shape {sorted(wrong)[:5]}")
