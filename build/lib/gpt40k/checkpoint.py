"""Checkpoint folders, Hugging Face style, written atomically.

A checkpoint folder holds ``config.json``, ``model.safetensors`` and ``tokenizer.json``
(weights never go through pickle). A training run's folder holds two of them:

    run/best/      the lowest validation loss so far (what the app and the Hub get)
    run/latest/    the last save, plus training_state.pt, which --resume needs
    run/metrics.jsonl, run/loss_curve.png, run/train_args.json

A folder is written under a temporary name and renamed into place, so a crash or a kill
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import GPT40kError
from .model import CONFIG_FILE, GPT, WEIGHTS_FILE, read_config
from .tokenizer import TOKENIZER_FILE, CharTokenizer

STATE_FILE = "training_state.pt"
ARGS_FILE = "train_args.json"
SNAPSHOTS_DIR = "snapshots"  # a run's timeline: snapshots/step-000500/, ... (train.py --snapshot-every)
SNAPSHOT_INFO_FILE = "snapshot.json"  # step, tokens and losses of a snapshot


class CheckpointError(GPT40kError, ValueError):
    """A checkpoint is missing, incomplete or corrupt; the message names the problem."""


@contextmanager
def atomic_folder(dest: str | Path):
    """Yield a temporary folder; once it is written, it replaces ``dest``.

    At every moment a complete copy exists, whatever kills the process and wherever: ``dest``,
    or (between two renames) ``dest.old``, which the next save puts back before anything else
    and which the loaders look for (find_checkpoint, --resume). Each file-system step goes
    through _rename/_remove so a test can kill the process at each one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    old = dest.with_name(f"{dest.name}.old")
    _remove_stale_tmp(dest)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.exists() and not dest.exists():
        _rename(old, dest)  # an earlier save died between its renames: old is its complete copy
    if old.exists():
        _remove(old)  # dest is complete: old is stale
    if dest.exists():
        _rename(dest, old)  # between these two renames `old` is the checkpoint
    _rename(tmp, dest)
    _remove(old)


def _rename(src: Path, dst: Path) -> None:
    src.rename(dst)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _remove_stale_tmp(dest: Path) -> None:
    """Temporary folders of writers that died (or of this process): never complete, never needed."""
    for tmp in dest.parent.glob(f".{dest.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            _remove(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: str | Path, data) -> None:
    """Write a JSON file atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_model_files(model: GPT, folder: Path, tokenizer: CharTokenizer | None,
                      dtype: torch.dtype | None = None) -> None:
    """``dtype`` (e.g. float16, half the size) converts the weights; loading converts them back."""
    try:
        write_json(folder / CONFIG_FILE, model.config.to_dict())
        state = {k: v.detach().to(dtype or v.dtype).contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, folder / WEIGHTS_FILE, metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save(folder / TOKENIZER_FILE)
    except (OSError, SafetensorError) as e:  # a full disk, a quota, a folder gone: say which and where
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise CheckpointError(f"cannot write a checkpoint in {folder.parent}: {reason}. Free some disk space "
                              "(the previous checkpoint is kept), then --resume") from None


def save_model(model: GPT, folder: str | Path, tokenizer: CharTokenizer | None = None,
               dtype: torch.dtype | None = None, info: dict | None = None) -> Path:
    """A checkpoint folder; ``info`` is written as snapshot.json beside the weights."""
    model = getattr(model, "module", model)  # unwrap DDP / torch.compile
    model = getattr(model, "_orig_mod", model)
    with atomic_folder(folder) as tmp:
        write_model_files(model, tmp, tokenizer, dtype)
        if info is not None:
            write_json(tmp / SNAPSHOT_INFO_FILE, info)
    return Path(folder)


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder meant by ``path``: itself, or a run folder's best (else latest)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    for candidate in (path, path / "best", path / "latest", path / "best.old", path / "latest.old"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise CheckpointError(
        f"{path} holds no GPT-40k checkpoint: expected {CONFIG_FILE} and {WEIGHTS_FILE} in it, "
        "or a run folder with best/ or latest/")


def load_local(folder: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, CharTokenizer]:
    """Model and tokenizer from a checkpoint folder, checking that every piece is there and fits."""
    folder = find_checkpoint(folder)
    try:
        tokenizer = CharTokenizer.load(folder / TOKENIZER_FILE)
    except (FileNotFoundError, ValueError) as e:
        raise CheckpointError(str(e)) from None
    model = load_gpt(folder, device)
    if len(tokenizer) != model.config.vocab_size:
        raise CheckpointError(f"{folder}: tokenizer has {len(tokenizer)} characters but config.json says "
                              f"vocab_size={model.config.vocab_size}; the files do not belong together")
    return model, tokenizer


def load_gpt(folder: str | Path, device: str | torch.device = "cpu") -> GPT:
    """The model alone (config.json and model.safetensors), in eval mode on ``device``."""
    folder = find_checkpoint(folder)
    try:
        config = read_config(folder)
    except (FileNotFoundError, ValueError) as e:
        raise CheckpointError(str(e)) from None
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"no {WEIGHTS_FILE} in {folder}: the checkpoint is incomplete")
    check_weights_match(config, weights_path)  # before anything the size of the config is built
    try:
        state = load_file(weights_path, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({e}); download or copy it again") from None
    model = GPT(config)
    model.load_state_dict(state)
    model.to(device)
    model.set_attention_kernel("auto", device)
    model.eval()
    return model


def check_weights_match(config, weights_path: Path) -> None:
    """Compare the weights' names and shapes (read from the safetensors header, no tensor loaded)
    with what ``config`` builds (on the meta device: no memory), so a config that does not belong
    to its weights costs nothing."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in GPT(config).state_dict().items()}
    try:
        with safe_open(weights_path, "pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({e}); download or copy it again") from None
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    wrong = [k for k in expected.keys() & found.keys() if found[k] != expected[k]]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{weights_path} does not match config.json: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}, wrong shape {sorted(wrong)[:5]}")


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu", **hub_kwargs):
    """(model, tokenizer, folder) from a local checkpoint or run folder, or a Hub ``user/name[@rev]``."""
    from .hub import resolve_model_dir

    folder = resolve_model_dir(str(name_or_path), **hub_kwargs)
    model, tokenizer = load_local(folder, device)
    return model, tokenizer, find_checkpoint(folder)


def save_training_state(path: Path, state: dict) -> None:
    torch.save(state, path)


def load_training_state(folder: Path) -> dict:
    """The optimizer/RNG/step state; weights_only=True, so loading it runs no pickled code."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"no {STATE_FILE} in {folder}: this checkpoint cannot be resumed "
                              "(only the latest/ folder of a run, or a push with --push-training-state, can)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged or hostile files
        raise CheckpointError(f"{path} is corrupt or not a GPT-40k training state: {e}") from None
