"""Training configuration: one dataclass, named presets, and the command line generated from both.

Every field of ``TrainConfig`` is a flag (``n_layer`` -> ``--n-layer``); a preset fills in
defaults and any flag given overrides it. The model's fields are ``GPTConfig``'s own (all but
vocab_size, which the books decide), with their defaults: ``TrainConfig`` inherits them from
``ModelFields``, made from ``GPTConfig``, so a field added there is a flag here.
"""

from __future__ import annotations

import argparse
import math
import re
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass

from ..errors import ConfigError, HubError
from ..hub.client import parse_repo_ref
from ..model.config import GPTConfig


def _is_instance(value, hint: str) -> bool:
    """``value`` fits a field's type as written in this file ("int", "float | None", "str")."""
    kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
    allowed = tuple(t for name in hint.replace(" ", "").split("|") for t in kinds.get(name, ()))
    if not allowed:
        return True
    return isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool))


def opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


MODEL_HELP = {  # the flags' help for GPTConfig's fields (a field without one is an error at import)
    "block_size": ("context length in characters", {}),
    "n_layer": ("transformer blocks", {}),
    "n_head": ("attention heads per block", {}),
    "n_embd": ("channels (embedding size)", {}),
    "dropout": ("dropout probability", {}),
    "bias": ("biases in Linear and LayerNorm layers", {}),
    "activation": ("MLP activation", {"choices": ["gelu", "relu"]}),
}
MODEL_FIELDS = [f.name for f in fields(GPTConfig) if f.name != "vocab_size"]  # the books decide vocab_size


def _model_field(f):
    help_text, extra = MODEL_HELP[f.name]
    return f.name, f.type, opt(f.default, help_text, **extra)


# GPTConfig's fields with their defaults, as flags: TrainConfig inherits them rather than listing them again
ModelFields = make_dataclass("ModelFields", [_model_field(f) for f in fields(GPTConfig) if f.name in MODEL_FIELDS])
ModelFields.__module__ = __name__  # where its type hints are read


@dataclass
class TrainConfig(ModelFields):
    # ---- data ----
    data: list[str] = opt(None, "text files, folders (all *.txt, recursively) or globs", nargs="+")
    val_fraction: float = opt(0.1, "share of the end of each book kept for validation")
    min_char_count: int = opt(1, "drop characters seen fewer than N times from vocabulary and text")
    cache_dir: str | None = opt(None, "where the encoded corpus is cached (default: OUT/data_cache)")
    # ---- optimisation ----
    batch_size: int = opt(64, "sequences per step (per GPU)")
    max_iters: int = opt(5000, "optimizer steps in all")
    lr: float = opt(3e-4, "peak learning rate")
    min_lr: float | None = opt(None, "final learning rate of the cosine decay (default: lr / 10)")
    lr_schedule: str = opt("cosine", "cosine: warm-up then cosine decay; constant: lr throughout",
                           choices=["cosine", "constant"])
    warmup_iters: int = opt(100, "steps of linear warm-up")
    weight_decay: float = opt(0.1, "AdamW weight decay (matrices only; not biases, norms)")
    beta1: float = opt(0.9, "AdamW beta1")
    beta2: float = opt(0.99, "AdamW beta2 (0.99: few tokens per step)")
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0: off)")
    # ---- evaluation, early stopping ----
    eval_interval: int = opt(250, "evaluate every N steps")
    eval_iters: int = opt(50, "batches per loss estimate")
    patience: int = opt(10, "stop after N evaluations without a better val loss (0: never)")
    sample_chars: int = opt(200, "characters of sample text printed at each evaluation (0: none)")
    snapshot_every: int = opt(0, "keep a small half-precision snapshot every N steps in OUT/snapshots/ "
                                 "(a multiple of --eval-interval; 0: none): the run's timeline for the app")
    # ---- running ----
    out: str = opt("runs/gpt40k", "run folder: checkpoints, metrics, loss curve")
    device: str = opt("auto", "auto prefers CUDA, then MPS, then CPU", choices=["auto", "cpu", "cuda", "mps"])
    dtype: str = opt("auto", "auto: bf16 autocast where supported, fp16 + grad scaler on older GPUs",
                     choices=["auto", "float32", "bfloat16", "float16"])
    compile: bool = opt(False, "torch.compile the model (helps on CUDA; slower on CPU here)")
    attention: str = opt("auto", "auto: PyTorch's fused kernel on GPUs; on CPUs training/cpu_kernels.py swapped into "
                                 "the model (use_cpu_kernels: attention tile by tile, dropout p rounded to 1/256, "
                                 "0.2 -> 0.1992); math: model.py's attention and PyTorch's dropout, the exact "
                                 "reference; fused: the fused kernel everywhere", choices=["auto", "math", "fused"])
    seed: int = opt(1337, "random seed")
    time_limit: float | None = opt(None, "save and stop after this many minutes (Kaggle sessions end)")
    # ---- publishing ----
    push_to_hub: str | None = opt(None, "upload the best checkpoint to this Hub repository (user/name) at the end",
                                  metavar="USER/NAME")
    hub_private: bool = opt(False, "create the Hub repository as private")
    push_every: bool = opt(False, "also push a snapshot at every evaluation, to the branch step-N")
    push_training_state: bool = opt(False, "also push what --resume needs (last-checkpoint/), so "
                                           "--resume hub:USER/NAME continues on another machine")

    def __post_init__(self):
        if isinstance(self.data, str):
            self.data = [self.data]
        if self.data is not None and not (isinstance(self.data, list) and all(isinstance(d, str) for d in self.data)):
            raise ConfigError(f"--data must name text files, folders or globs, got {self.data!r}")
        for f in fields(self):  # a hand-edited train_args.json may hold any JSON: check every type first
            value, hint = getattr(self, f.name), f.type
            if f.name != "data" and value is not None and not _is_instance(value, hint):
                raise ConfigError(f"--{f.name.replace('_', '-')} must be {hint}, got {value!r}")
        positive = ["batch_size", "max_iters", "eval_interval", "eval_iters", "min_char_count"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_iters", "patience", "sample_chars", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if self.snapshot_every < 0 or (self.snapshot_every and self.snapshot_every % self.eval_interval):
            raise ConfigError(f"--snapshot-every must be 0 or a multiple of --eval-interval ({self.eval_interval}), "
                              f"so every snapshot has its val loss; got {self.snapshot_every}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "val_fraction", "time_limit", "beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"--min-lr must be between 0 and --lr ({self.lr}), got {self.min_lr}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be in [0, 1), got {getattr(self, name)} (AdamW's default: 0.9, 0.999)")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed must be between 0 and 2**63 - 1, got {self.seed}")
        if self.push_to_hub is not None:
            try:
                if parse_repo_ref(self.push_to_hub)[1]:
                    raise HubError("give --push-to-hub without @revision: it pushes to main (and step-N branches)")
            except HubError as e:
                raise ConfigError(f"--push-to-hub: {e}") from None
        if (self.push_every or self.push_training_state) and not self.push_to_hub:
            raise ConfigError("--push-every and --push-training-state need --push-to-hub USER/NAME")
        if not str(self.out).strip():
            raise ConfigError("--out must name a folder for the run (it is empty)")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"--time-limit must be positive (minutes), got {self.time_limit}")
        try:  # the model's fields are checked in one place, GPTConfig: now, not after data loading
            self.model_config(vocab_size=1)
        except ConfigError as e:  # its messages name fields; name them as the flags the user typed
            names = "|".join(f.name for f in fields(GPTConfig))
            raise ConfigError(re.sub(rf"\b({names})\b", lambda m: "--" + m[1].replace("_", "-"), str(e))) from None

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, **{name: getattr(self, name) for name in MODEL_FIELDS})

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    # The original author's final model: ~1.85M parameters.
    "seed": dict(n_layer=4, n_head=6, n_embd=192, block_size=256, batch_size=64, dropout=0.2, lr=3e-4,
                 max_iters=10000, eval_interval=250, eval_iters=50, patience=8),
    # The author's first model, which overfit after one epoch of the 40k books: ~20M parameters.
    "seed-20m": dict(n_layer=6, n_head=8, n_embd=512, block_size=256, batch_size=64, dropout=0.2, lr=3e-4,
                     max_iters=10000, eval_interval=250, eval_iters=50, patience=8),
    # The best val loss in ~70 s on a 2-core CPU (README, "The cpu preset"; bench/cpu_preset.py).
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=32, dropout=0.0, lr=2e-3,
                max_iters=1800, warmup_iters=100, eval_interval=250, eval_iters=50, patience=0,
                sample_chars=100, weight_decay=0.1),
    # Trains in seconds: for tests and smoke runs.
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=16, dropout=0.0, lr=3e-3,
                 max_iters=200, warmup_iters=10, eval_interval=50, eval_iters=5, patience=0,
                 sample_chars=40),
}


# ---- the command line -------------------------------------------------------------------
def _flag_type(hint):
    """The argparse type for a field's type hint (``int``, ``float | None``, ``list[str]``)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return str if typing.get_origin(hint) is list else hint


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, the model's in a group of their own. Defaults are suppressed
    so we can tell what was given."""
    hints = typing.get_type_hints(TrainConfig)
    model_group = parser.add_argument_group("the model (GPTConfig's fields)")
    for f in fields(TrainConfig):
        group = model_group if f.name in MODEL_FIELDS else parser
        flag = "--" + f.name.replace("_", "-")
        kw = {k: v for k, v in f.metadata.items() if k != "help"}
        default = None if f.default is MISSING else f.default
        help_text = f"{f.metadata['help']} (default: {default})"
        if hints[f.name] is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=help_text)
        else:
            group.add_argument(flag, type=_flag_type(hints[f.name]), default=argparse.SUPPRESS,
                               help=help_text, **kw)


def build_config(preset: str, overrides: dict) -> TrainConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[preset], **overrides})
