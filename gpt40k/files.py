"""Every file name GPT-40k writes, and the one way it writes them: atomically.

A checkpoint folder (what ``save_pretrained`` writes and the Hub holds):
    config.json, model.safetensors, tokenizer.json, README.md (the card), loss_curve.png
A training run folder:
    best/ (lowest validation loss), latest/ (+ training_state.pt for --resume), snapshots/step-N/,
    metrics.jsonl, loss_curve.png, train_args.json, corpus.json, run_summary.json

Files and folders are written under a temporary name and renamed into place, so a crash or a
kill mid-write leaves the previous version intact.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

from .errors import CheckpointError, TrainingError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "README.md"
CURVE_FILE = "loss_curve.png"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)

BEST_DIR, LATEST_DIR = "best", "latest"
STATE_FILE = "training_state.pt"  # in latest/: optimizer, RNG and step, for --resume
ARGS_FILE = "train_args.json"
METRICS_FILE = "metrics.jsonl"
CORPUS_FILE = "corpus.json"  # which books, how many characters: for the card
SUMMARY_FILE = "run_summary.json"
SNAPSHOTS_DIR = "snapshots"  # a run's timeline: snapshots/step-000500/, ... (train.py --snapshot-every)
SNAPSHOT_INFO_FILE = "snapshot.json"  # step, tokens and losses of a snapshot
RESUME_DIR = "last-checkpoint"  # on the Hub: a run's latest/, for --resume hub:user/name
LOCK_FILE = ".train.lock"
CACHE_DIR = "data_cache"  # the encoded corpus, when no --cache-dir is given


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


@contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside ``path`` (same suffix, for writers that look at it); once it
    is written, it replaces ``path``. On an error the temporary file goes and ``path`` is untouched.
    The file gets the mode a plain ``open`` gives (some writers, safetensors' among them, make 0600)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def disk_errors(folder: str | Path):
    """A full disk, a quota or a vanished folder while writing a checkpoint into ``folder`` becomes a
    CheckpointError that says which and where; the previous checkpoint is kept (atomic_folder)."""
    try:
        yield
    except (OSError, SafetensorError, RuntimeError) as e:  # RuntimeError: torch.save's failed writes
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise CheckpointError(f"cannot write a checkpoint in {Path(folder).parent}: {reason}. Free some disk "
                              "space (the previous checkpoint is kept), then --resume") from None


@contextmanager
def atomic_folder(dest: str | Path):
    """Yield a temporary folder; once it is written, it replaces ``dest``.

    At every moment a complete copy exists, whatever kills the process and wherever: ``dest``,
    or (between two renames) ``kept_copy(dest)``, ``dest.old``, which the next save puts back before
    anything else and which the loaders look for (hub.find_checkpoint, resume.find_resumable). Each
    file-system step goes through _rename/_remove so a test can kill the process at each one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    old = kept_copy(dest)
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


def kept_copy(dest: Path) -> Path:
    """Where ``atomic_folder`` keeps the complete copy of ``dest`` between its two renames."""
    return dest.with_name(f"{dest.name}.old")


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


# ---- what a run folder may hold ------------------------------------------------------------
RUN_FILES = {ARGS_FILE, METRICS_FILE, CORPUS_FILE, SUMMARY_FILE, CURVE_FILE, LOCK_FILE}
RUN_FOLDERS = {BEST_DIR, LATEST_DIR, SNAPSHOTS_DIR, CACHE_DIR}
CHECKPOINT_NAMES = {*CHECKPOINT_FILES, CARD_FILE, CURVE_FILE, STATE_FILE, ARGS_FILE, SNAPSHOT_INFO_FILE}


def _ours(name: str, known: set[str]) -> bool:
    """A name this project writes there: one of ``known``, its kept copy, or a temporary (``.x.tmp-PID``)."""
    return name in known or name.removesuffix(".old") in known or (name.startswith(".") and ".tmp-" in name) \
        or name.startswith(".write-test-")


def foreign_files(run_dir: Path) -> list[str]:
    """Paths in ``run_dir`` that no training run writes (a user's files): a run must never delete them."""
    found = []
    for entry in sorted(run_dir.iterdir()):
        if not _ours(entry.name, RUN_FILES | RUN_FOLDERS):
            found.append(entry.name)
        elif entry.is_dir() and entry.name.removesuffix(".old") in (BEST_DIR, LATEST_DIR) and ".tmp-" not in entry.name:
            found += [f"{entry.name}/{e.name}" for e in sorted(entry.iterdir()) if not _ours(e.name, CHECKPOINT_NAMES)]
        elif entry.is_dir() and entry.name == SNAPSHOTS_DIR:
            for snap in sorted(entry.iterdir()):
                if not (snap.is_dir() and (snap.name.startswith("step-") or ".tmp-" in snap.name)):
                    found.append(f"{SNAPSHOTS_DIR}/{snap.name}")
                else:
                    found += [f"{SNAPSHOTS_DIR}/{snap.name}/{e.name}" for e in sorted(snap.iterdir())
                              if not _ours(e.name, CHECKPOINT_NAMES)]
    return found


def holds_run(run_dir: Path) -> bool:
    return run_dir.is_dir() and any((run_dir / name).exists() for name in (ARGS_FILE, METRICS_FILE, BEST_DIR,
                                                                           LATEST_DIR, SNAPSHOTS_DIR))


def claim_run_folder(run_dir: Path, *, resuming: bool, overwrite: bool) -> None:
    """Check, before anything is written, that training may write into ``run_dir``: a new or empty
    folder, the run being resumed, or (with ``overwrite``) an old run, whose files alone are then
    removed. A folder holding anything a run did not write is refused, so nothing of a user's is lost."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise TrainingError(f"--out {run_dir} is a file, not a folder: give the run a folder of its own")
    foreign = foreign_files(run_dir)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TrainingError(f"--out {run_dir} holds files that are not a training run's ({shown}); a run "
                            "replaces its folders whole, so it would delete them. Give the run a new, empty "
                            "folder (--out NEW_FOLDER), or move those files away")
    if resuming or not holds_run(run_dir):
        return
    if not overwrite:
        raise TrainingError(f"--out {run_dir} already holds a training run: continue it with --resume {run_dir}, "
                            "choose another --out, or start it again from scratch with --overwrite (which deletes "
                            "that run's checkpoints, snapshots and metrics)")
    for entry in run_dir.iterdir():
        if entry.name in (LOCK_FILE, CACHE_DIR):  # the cache is keyed by the text: still valid
            continue
        if entry.is_dir():
            _remove(entry)
        else:
            entry.unlink(missing_ok=True)


# ---- reading what a checkpoint folder holds: assume the disk lies --------------------------
KiB, MiB = 1 << 10, 1 << 20
MAX_BYTES = {CONFIG_FILE: 64 * KiB, TOKENIZER_FILE: 4 * MiB, CARD_FILE: 1 * MiB, CURVE_FILE: 8 * MiB,
             SNAPSHOT_INFO_FILE: 64 * KiB, ARGS_FILE: 1 * MiB, METRICS_FILE: 64 * MiB}


def _allowed_root(folder: Path) -> Path:
    """The folder itself, or for a download in the Hugging Face cache (files are links into
    ``models--OWNER--NAME/blobs``) that repository's cache folder."""
    for parent in [folder, *folder.parents]:
        if parent.name.startswith(("models--", "spaces--", "datasets--")) and (parent / "blobs").is_dir():
            return parent
    return folder


def checked_file(folder: str | Path, name: str, max_bytes: int | None = None) -> Path:
    """``folder/name`` if it is a regular file of at most ``max_bytes`` (default: MAX_BYTES[name]) that
    resolves inside ``folder``; otherwise a CheckpointError saying why (a FileNotFoundError if it is missing).
    A link to /dev/zero, a FIFO, /etc/passwd or a multi-gigabyte "config" is never opened."""
    folder = Path(folder)
    path = folder / name
    real = path.resolve()
    root = _allowed_root(folder.resolve())
    if not real.is_relative_to(root):
        raise CheckpointError(f"{path} points outside its folder (to {real}): refused, copy the real file there")
    try:
        st = real.stat()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path} is not a regular file (a device, pipe or folder): refused")
    limit = max_bytes if max_bytes is not None else MAX_BYTES.get(name)
    if limit is not None and st.st_size > limit:
        raise CheckpointError(f"{path} is {st.st_size:,} bytes, more than a {Path(name).name} can need "
                              f"({limit:,}): refused")
    return real


def read_checked_json(folder: str | Path, name: str):
    """The JSON in a checked file; ValueError for text that is not JSON (or nests too deeply to read)."""
    text = checked_file(folder, name).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("it nests too deeply to be a GPT-40k file") from None
