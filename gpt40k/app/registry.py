"""The models the page offers: the shipped checkpoints with their training snapshots, the one
asked for with --model / GPT40K_MODEL, and its Hub step-N branches."""

from __future__ import annotations

import base64
import logging
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml  # huggingface_hub's own dependency: the card's front matter

from ..checkpoint import load
from ..errors import CheckpointError, GPT40kError
from ..files import CARD_FILE, CURVE_FILE, SNAPSHOT_INFO_FILE, SNAPSHOTS_DIR, checked_file, read_checked_json
from ..hub.client import find_checkpoint, step_branches
from ..interpret import head_roles, loss_on, own_text
from ..model.model import GPT
from ..model.tokenizer import CharTokenizer
from ..project import SHIPPED_MODELS, checkpoints_dir
from .zerogpu import use_gpu, zero_gpu_active

log = logging.getLogger("gpt40k.app")
LOAD_WAIT_S = 120.0  # a visitor waiting for another's load of the same model gives up after this
REFERENCE_CHARS = 1000  # the model's own text that head roles and knock-out losses are measured on


@dataclass
class LoadedModel:
    name: str
    model: GPT
    tokenizer: CharTokenizer
    folder: Path

    @property
    def card(self) -> str:
        """The model card as markdown, its loss curve inlined (a relative image link would not load)."""
        try:
            _, text = self._card_parts()
        except FileNotFoundError:
            return f"## {self.name}\n\nThis checkpoint has no model card."
        except (CheckpointError, OSError) as e:
            return f"## {self.name}\n\nThe model card was not shown: {e}"
        try:
            curve = checked_file(self.folder, CURVE_FILE).read_bytes()
        except (CheckpointError, OSError):  # missing, or refused: the card goes without its picture
            curve = b""
        is_png = curve.startswith(b"\x89PNG")
        inline = f"data:image/png;base64,{base64.b64encode(curve).decode()}" if is_png else ""
        return re.sub(rf"!\[([^\]]*)\]\({re.escape(CURVE_FILE)}\)", (lambda m: f"![{m[1]}]({inline})") if inline else "",
                      text)


    def _card_parts(self) -> tuple[str | None, str]:
        """(the card's front matter, its markdown): README.md read as every checkpoint file is (files.checked_file)."""
        raw = checked_file(self.folder, CARD_FILE).read_text(encoding="utf-8", errors="replace")
        front = re.match(r"\A---\n(.*?)\n---\n", raw, re.S)
        return (front.group(1), raw[front.end():]) if front else (None, raw)

    @property
    def description(self) -> str:
        """One line on the model for the Write tab: the card's ``description`` (its front matter), else
        what the config says."""
        try:
            front, _ = self._card_parts()
            meta = yaml.safe_load(front) if front else None
            if isinstance(meta, dict) and isinstance(meta.get("description"), str):
                return " ".join(meta["description"].split())
        except (OSError, CheckpointError, ValueError, yaml.YAMLError):
            pass
        c = self.model.config
        return (f"a character-level GPT of {self.model.num_parameters():,} parameters ({c.n_layer} layers, "
                f"{c.n_head} heads, {c.n_embd} channels) that reads and writes one of {c.vocab_size} characters "
                "at a time")


@dataclass
class Snapshot:
    label: str  # e.g. "step 58 (2%) · val 2.594"
    source: str
    step: int


def find_snapshots(folder: Path) -> list[Snapshot]:
    """The training snapshots kept beside a checkpoint (train.py --snapshot-every), oldest first."""
    for base in (folder / SNAPSHOTS_DIR, folder.parent / SNAPSHOTS_DIR):
        if base.is_dir():
            break
    else:
        return []
    snaps = []
    for path in sorted(base.glob("step-*")):
        try:
            info = read_checked_json(path, SNAPSHOT_INFO_FILE)
            step, val = int(info["step"]), float(info["val_loss"])
        except (OSError, ValueError, KeyError, TypeError, OverflowError):  # CheckpointError is a ValueError
            continue
        snaps.append(Snapshot(f"step {step:,} · val loss {val:.3f}", str(path), step))
    return snaps


@dataclass
class ModelRegistry:
    sources: dict[str, str] = field(default_factory=dict)  # display name -> folder or Hub id
    timelines: dict[str, list[Snapshot]] = field(default_factory=dict)  # model name -> its snapshots
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    warning: str | None = None
    default: str | None = None
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")  # choose_device
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # guards the dicts, never I/O
    _loading: dict[str, Future] = field(default_factory=dict, repr=False)
    _measured: dict[tuple, object] = field(default_factory=dict, repr=False)  # reference texts, roles, losses

    def add(self, name: str, source: str) -> None:
        self.sources[name] = source
        folder = Path(source)
        if folder.exists():
            snaps = find_snapshots(find_checkpoint(folder))
            if snaps:
                self.timelines[name] = snaps
                final_step = max(s.step for s in snaps)
                for s in snaps:
                    self.sources[f"{name} @ {s.label}"] = s.source
                log.info("%s: %d training snapshots (up to step %d)", name, len(snaps), final_step)

    def add_shipped(self, folder: Path | None = None) -> None:
        """The shipped checkpoints in their order (the first is the default), then any others kept there."""
        folder = folder or checkpoints_dir()
        others = sorted(p.name for p in folder.iterdir() if p.name not in SHIPPED_MODELS) if folder.is_dir() else []
        for name in [*SHIPPED_MODELS, *others]:
            try:
                find_checkpoint(folder / name)
            except GPT40kError:
                continue
            self.add(name, str(folder / name))

    def request(self, ref: str | None) -> None:
        """Make ``ref`` (a folder or user/name[@rev]) the default; on failure keep a shipped one and say why."""
        if ref and Path(ref).exists():  # a folder already on offer (say, a shipped one): not twice
            same = [n for n, src in self.sources.items() if Path(src).resolve() == Path(ref).resolve()]
            if same:
                self.default = same[0]
                self.get(self.default)
                return
        if ref:
            try:
                self.load(ref, ref)
                self.add(ref, ref)
                self.default = ref
                self._add_hub_branches(ref)
                return
            except Exception as e:  # offline, missing, private, corrupt: the app still starts
                self.warning = f"Could not load the model {ref!r}: {e} The page uses the shipped checkpoint instead."
                log.warning(self.warning)
        if not self.sources:
            raise GPT40kError(f"no model to show: {checkpoints_dir()} holds no checkpoint and none was given with "
                              "--model or GPT40K_MODEL (a checkpoint folder, or a Hub model user/name)")
        self.default = next(iter(self.sources))
        self.get(self.default)

    def choose_device(self) -> str:
        """On a ZeroGPU Space, the CPU unless the default model is large enough that a GPU attached per
        call is faster (zerogpu.use_gpu); elsewhere a GPU when there is one. Loaded models move there."""
        if zero_gpu_active() and self.default in self.loaded:
            n_params = self.loaded[self.default].model.num_parameters()
            self.device = "cuda" if use_gpu(n_params) else "cpu"
            log.info("ZeroGPU: %s parameters, running on the %s", f"{n_params:,}", self.device.upper())
        for lm in self.loaded.values():
            lm.model.to(self.device)
        return self.device

    def _add_hub_branches(self, ref: str) -> None:
        """Offer the step-N branches that --push-every made, to compare early and late models."""
        if Path(ref).exists() or "@" in ref:
            return
        try:
            steps = step_branches(ref)
        except Exception as e:
            log.info("no Hub branches listed for %s: %s", ref, e)
            return
        if steps:  # the run's timeline, as the Hub keeps it
            self.timelines[ref] = [Snapshot(f"step {n:,} (Hub branch)", f"{ref}@step-{n}", n) for n in steps]
            for snap in self.timelines[ref]:
                self.sources[f"{ref} @ {snap.label}"] = snap.source

    def load(self, name: str, source: str) -> LoadedModel:
        ckpt = load(source, device=self.device)
        lm = LoadedModel(name, ckpt.model, ckpt.tokenizer, ckpt.folder)
        with self._lock:
            self.loaded[name] = lm
        return lm

    def get(self, name: str | None) -> LoadedModel:
        """The model ``name`` (else the default), loaded once. No lock is held while a model loads: a
        slow or stuck load (a Hub branch, a damaged disk) delays only the visitors who asked for that model."""
        name = name if name in self.sources else self.default
        with self._lock:
            if name in self.loaded:
                return self.loaded[name]
            pending, mine = self._loading.get(name), name not in self._loading
            if mine:
                pending = self._loading[name] = Future()
        if not mine:  # another visitor is loading it: wait for that load, not for a second one
            return pending.result(timeout=LOAD_WAIT_S)
        try:
            lm = self.load(name, self.sources[name])
            pending.set_result(lm)
            return lm
        except BaseException as e:
            pending.set_exception(e)
            raise
        finally:
            with self._lock:
                self._loading.pop(name, None)

    @property
    def choices(self) -> list[str]:
        return list(self.sources)

    def early_and_late(self) -> tuple[str, str]:
        """Compare's default pair: the default model's earliest snapshot and the model itself
        (the seed author's 1k-vs-50k picture), else the first two models."""
        snaps = self.timelines.get(self.default or "")
        if snaps:
            return f"{self.default} @ {snaps[0].label}", self.default
        names = self.choices
        return names[0], names[1] if len(names) > 1 else names[0]

    def family(self, name: str | None) -> str | None:
        """The trained model whose run ``name`` is a snapshot of (``name`` itself for a model)."""
        return next((n for n in self.timelines if (name or "").startswith(n + " @ ")), name)

    def _measure(self, key: tuple, compute):
        """``compute()``, once per key (no lock held while it runs: two visitors may both compute it)."""
        with self._lock:
            if key in self._measured:
                return self._measured[key]
        value = compute()
        with self._lock:
            return self._measured.setdefault(key, value)

    def reference(self, name: str | None) -> list[int]:
        """The text a model's heads and knock-outs are measured on: REFERENCE_CHARS of its trained
        model's own writing (the same for every snapshot of a run, so their roles compare)."""
        family = self.family(name if name in self.sources else self.default)
        lm = self.get(family)
        return self._measure(("reference", family), lambda: own_text(lm.model, lm.tokenizer, REFERENCE_CHARS))

    def roles(self, name: str | None) -> dict[tuple[int, int], dict[str, float]]:
        """Every head's role scores (gpt40k.interpret.head_roles) on the reference text, keys 1-based."""
        lm, ids = self.get(name), self.reference(name)
        return self._measure(("roles", lm.name), lambda: head_roles(lm.model, lm.tokenizer, lm.tokenizer.decode(ids)))

    def passage_loss(self, name: str | None, model: GPT | None = None) -> float:
        """Loss (nats/char) on the reference text of ``name``'s model, or of ``model`` (not cached)."""
        ids = self.reference(name)
        if model is not None:
            return loss_on(model, ids)
        lm = self.get(name)
        return self._measure(("loss", lm.name), lambda: loss_on(lm.model, ids))

    def timeline(self, name: str | None) -> list[tuple[str, str]]:
        """(label, model name) for the snapshots of ``name``'s run, then ``name`` itself."""
        base = self.family(name)
        if base not in self.timelines:
            return [("final", name or self.default)]
        return [(s.label, f"{base} @ {s.label}") for s in self.timelines[base]] + [("trained (final)", base)]
