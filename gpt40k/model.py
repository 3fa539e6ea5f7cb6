"""A character-level GPT: the decoder-only transformer of Karpathy's "Let's build GPT".

    token + position embeddings -> n_layer x [x + attn(ln1(x)); x + mlp(ln2(x))] -> ln_f -> lm_head

Read it top to bottom: the config, ``causal_attention`` (the lecture's attention, one screen),
the heads that use it, the MLP, a block, the model, then saving and loading. ``causal_attention``
is also what the demo shows: its weights, one (T, T) map per head. Faster kernels that compute
the same thing (PyTorch's fused one on GPUs, ``cpu_kernels`` on CPUs) are picked from where the
tensors are, at each call; ``--attention math`` keeps this file's code everywhere.
"""

from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .cpu_kernels import ByteDropout, chunked_causal_attention
from .errors import CheckpointError, ConfigError
from .files import CONFIG_FILE, WEIGHTS_FILE, atomic_file, checked_file, disk_errors, read_checked_json, write_json
from .generation import stream
from .hub import locate, push_folder

MODEL_TYPE = "gpt40k"
LIMITS = {"vocab_size": 2**16, "block_size": 8192, "n_layer": 128, "n_head": 256, "n_embd": 8192}
MAX_PARAMS = 2**30  # ~1.07 billion: the sizes together decide memory too (4 GB of fp32 weights)
MAX_WEIGHT_BYTES = 4 * MAX_PARAMS + (1 << 20)
KERNELS = ("auto", "math", "fused")


@dataclass
class GPTConfig:
    vocab_size: int = 97
    block_size: int = 256  # the longest context, in characters (learned positions go no further)
    n_layer: int = 4
    n_head: int = 6
    n_embd: int = 192
    dropout: float = 0.2
    bias: bool = True  # biases in Linear and LayerNorm layers
    activation: str = "gelu"  # "gelu" (GPT-2, nanoGPT) or "relu" (the lecture's seed model)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ConfigError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        for name, limit in LIMITS.items():  # a config decides memory: refuse sizes no character model needs
            if getattr(self, name) > limit:
                raise ConfigError(f"{name} = {getattr(self, name)} is over this project's limit of {limit}")
        if self.num_parameters() > MAX_PARAMS:
            raise ConfigError(f"{self.n_layer} layers of {self.n_embd} channels make {self.num_parameters():,} "
                              f"parameters, over this project's limit of {MAX_PARAMS:,}: a smaller model")

    def num_parameters(self) -> int:
        """The model's parameter count, from the sizes alone (what GPT(config).num_parameters() gives)."""
        C, V, bias = self.n_embd, self.vocab_size, int(self.bias)
        block = 2 * C * (1 + bias) + (3 * C * C + 3 * C * bias) + (C * C + C * bias) + (8 * C * C + 5 * C * bias)
        return (V + self.block_size) * C + self.n_layer * block + C * (1 + bias) + V * C + V * bias

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return {"model_type": MODEL_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GPTConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a config is a JSON object, not {type(data).__name__}")
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ConfigError(f"model_type is {data.get('model_type')!r}, not {MODEL_TYPE!r}: not a GPT-40k model")
        known = {f.name for f in fields(cls)}
        missing = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd"} - data.keys()
        if missing:
            raise ConfigError(f"config is missing {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


class GPTOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, vocab_size)
    loss: torch.Tensor | None  # mean cross-entropy when targets were given
    attentions: list[torch.Tensor] | None  # per layer, (B, n_head, T, context length)


def causal_mask(T: int, past: int, device) -> torch.Tensor:
    """(T, past + T): True where new position i (at past + i) may look at key j, j <= past + i."""
    return torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: nn.Module | None = None):
    """Self-attention of every head at once; returns (output, weights).

    q: (B, n_head, T, head_size), the queries of T new positions; k, v: (B, n_head, past + T,
    head_size), the keys and values of everything so far (past > 0 with a KV cache).
    Head h is q[:, h], k[:, h], v[:, h]: the lecture's Head module, computed for all heads in one go.
    """
    T, L = q.size(-2), k.size(-2)
    # Affinities: how well each query matches each key. Dividing by sqrt(head_size) keeps them
    # at unit variance, so the softmax does not saturate into one-hot at initialisation.
    scores = (q / math.sqrt(q.size(-1))) @ k.transpose(-2, -1)  # (B, nh, T, L)
    if T > 1:  # the future may not talk to the past (one new position may see every key)
        scores.masked_fill_(~causal_mask(T, L - T, q.device), float("-inf"))
    weights = F.softmax(scores, dim=-1)  # each row: how much a position attends to each earlier one
    weights = weights.to(v.dtype)  # under bf16 autocast the softmax answers in fp32: halve the traffic
    y = (dropout(weights) if dropout is not None else weights) @ v  # a weighted sum of the values
    return y, weights


class KVCache:
    """Keys and values of every position seen so far, so each new character costs one position.

    Buffers are allocated once for the whole window (block_size positions); ``length`` says
    how many are filled. What happens when the window is full is the caller's choice
    (see ``gpt40k.generation``), since learned absolute positions cannot simply shift.
    """

    def __init__(self, config: GPTConfig, batch_size: int, device=None, dtype=torch.float32):
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.head_size)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled in every layer

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' k, v of one layer; return that layer's keys/values so far."""
        start, end = self.length, self.length + k.shape[2]
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def reset(self) -> None:
        self.length = 0


class CausalSelfAttention(nn.Module):
    """n_head heads side by side. Each head has its own query, key and value projection of
    head_size channels; one Linear computes all of them at once, then a view splits them per head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.head_size = config.n_head, config.head_size
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = ByteDropout(config.dropout)
        self.resid_dropout = ByteDropout(config.dropout)
        self.kernel = "auto"  # set by GPT.set_attention_kernel

    def forward(self, x, cache: KVCache | None = None, layer: int = 0, return_attention: bool = False):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size): every head works on its own slice of channels.
        q, k, v = (t.view(B, T, self.n_head, self.head_size).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k, v = cache.append(layer, k, v)  # keys/values of positions 0 .. past+T-1
        y, weights = self.attend(q, k, v, return_attention)
        y = y.transpose(1, 2).reshape(B, T, C)  # the heads' outputs side by side again
        return self.resid_dropout(self.proj(y)), weights

    def attend(self, q, k, v, return_attention: bool):
        """``causal_attention``, or a kernel that computes the same faster where the tensors are."""
        kernel = self.kernel
        if kernel == "auto":  # GPUs (any device but the CPU): PyTorch's fused kernel
            # on CPU under torch.compile the plain code: the compiler fuses it itself
            plain = q.size(2) == 1 or torch.compiler.is_compiling()
            kernel = "fused" if q.device.type != "cpu" else "math" if plain else "chunked"
        if return_attention or kernel == "math":  # only this one returns the weights
            return causal_attention(q, k, v, self.attn_dropout)
        dropout_p = self.attn_dropout.p if self.training else 0.0
        if kernel == "chunked":  # CPU: cpu_kernels.py
            return chunked_causal_attention(q, k, v, dropout_p), None
        T, past = q.size(2), k.size(2) - q.size(2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if past == 0 or T == 1 else causal_mask(T, past, q.device),
            is_causal=past == 0 and T > 1, dropout_p=dropout_p)
        return y, None


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = nn.GELU() if config.activation == "gelu" else nn.ReLU()
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = ByteDropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Communication (attention) then computation (MLP), each on a pre-normalised residual branch."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, layer=0, return_attention=False):
        a, weights = self.attn(self.ln1(x), cache, layer, return_attention)
        x = x + a
        return x + self.mlp(self.ln2(x)), weights


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.dropout = ByteDropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        # No weight tying: the seed model had none, and at ~100 characters the head is tiny.
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        self.apply(self._init_weights)
        # GPT-2: scale the init of layers that write into the residual stream by 1/sqrt(2 * n_layer),
        # so the stream's variance does not grow with depth (two such writes per block).
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self.set_attention_kernel("auto")

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_attention_kernel(self, kernel: str = "auto") -> None:
        """"auto" (default), "math" (this file's ``causal_attention``) or "fused" (PyTorch's SDPA).

        "auto" decides at each call from where the tensors are: on CUDA the fused kernel, on CPU
        ``cpu_kernels`` (attention chunk by chunk; dropout with p rounded to 1/256), so
        GPT(cfg).to("cuda") needs no call here. "math" is the exact reference everywhere: the
        lecture's attention and PyTorch's own dropout.
        """
        if kernel not in KERNELS:
            raise ConfigError(f"attention kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
        for block in self.blocks:
            block.attn.kernel = kernel
        for module in self.modules():
            if isinstance(module, ByteDropout):
                module.exact = kernel == "math"

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None, return_attention: bool = False) -> GPTOutput:
        """Logits for every position of ``idx`` (B, T); the loss too when ``targets`` are given.

        With ``cache``, ``idx`` holds only the new positions, which follow the cached ones.
        ``return_attention`` adds every layer's attention weights, (B, n_head, T, context).
        """
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ConfigError(
                f"{past + T} positions exceed the model's block_size of {self.config.block_size}: "
                "feed at most the last block_size characters (gpt40k.generation slides the window for you)")
        positions = torch.arange(past, past + T, device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))
        attentions = [] if return_attention else None
        for layer, block in enumerate(self.blocks):
            x, weights = block(x, cache, layer, return_attention)
            if return_attention:
                attentions.append(weights)
        if cache is not None:
            cache.advance(T)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        return GPTOutput(logits, loss, attentions)

    def new_cache(self, batch_size: int = 1, dtype: torch.dtype | None = None) -> KVCache:
        return KVCache(self.config, batch_size, self.device, dtype or self.lm_head.weight.dtype)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, **sampling) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T), as in the lecture.

        Keyword arguments are those of ``gpt40k.generation.stream`` (temperature, top_k,
        top_p, generator, slide).
        """
        new = [step.token for step in stream(self, idx, max_new_tokens, **sampling)]
        return torch.cat([idx, torch.stack(new, dim=1)], dim=1) if new else idx

    # ---- saving and loading, Hugging Face style -----------------------------------------
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
                        cache_dir: str | None = None) -> "GPT":
        """The model of a folder, a run folder (its best checkpoint) or a Hub id ``user/name[@rev]``,
        in eval mode. Needs config.json and model.safetensors only; the tokenizer is
        ``CharTokenizer.from_pretrained`` and both together ``gpt40k.load``."""
        return read_model(locate(name_or_path, revision=revision, token=token, cache_dir=cache_dir), device)

    def push_to_hub(self, repo_id: str, tokenizer=None, *, commit_message: str = "Upload GPT-40k model",
                    private: bool = False, branch: str | None = None, token: str | None = None) -> str:
        """Upload config.json and model.safetensors (and tokenizer.json) in one commit; the commit URL."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", tokenizer)
            return push_folder(folder, repo_id, commit_message=commit_message, private=private,
                               branch=branch, token=token)


def write_model(model: GPT, folder: Path, dtype: torch.dtype | None = None) -> None:
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
    path = Path(folder) / CONFIG_FILE
    try:
        return GPTConfig.from_dict(read_checked_json(folder, CONFIG_FILE))
    except FileNotFoundError:
        raise CheckpointError(f"no {CONFIG_FILE} in {folder}: not a GPT-40k checkpoint folder") from None
    except (ValueError, TypeError) as e:  # CheckpointError (refused file) is a ValueError too
        raise CheckpointError(f"{path} is not a valid GPT-40k config: {e}") from None


def read_model(folder: Path, device: str | torch.device = "cpu") -> GPT:
    """The model of a checkpoint folder, in eval mode on ``device``, every piece checked first."""
    config = read_config(folder)
    try:
        weights_path = checked_file(folder, WEIGHTS_FILE, max_bytes=MAX_WEIGHT_BYTES)
    except FileNotFoundError:
        raise CheckpointError(f"no {WEIGHTS_FILE} in {folder}: the checkpoint is incomplete") from None
    check_weights_match(config, weights_path)  # before anything the size of the config is built
    with unreadable_weights(weights_path):
        state = load_file(weights_path, device=str(device))
    model = GPT(config)
    model.load_state_dict(state)  # strict: every weight present, none left over
    return model.to(device).eval()


@contextmanager
def unreadable_weights(weights_path: Path):
    """A safetensors file that cannot be read becomes a CheckpointError that says what to do."""
    try:
        yield
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({e}); download or copy it again") from None


def check_weights_match(config: GPTConfig, weights_path: Path) -> None:
    """Compare the weights' names and shapes (read from the safetensors header, no tensor loaded)
    with what ``config`` builds (on the meta device: no memory), so a config that does not belong
    to its weights costs nothing."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in GPT(config).state_dict().items()}
    with unreadable_weights(weights_path), safe_open(weights_path, "pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    wrong = [k for k in expected.keys() & found.keys() if found[k] != expected[k]]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{weights_path} does not match config.json: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}, wrong shape {sorted(wrong)[:5]}")
