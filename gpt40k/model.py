"""A character-level GPT: the decoder-only transformer of Karpathy's "Let's build GPT".

    token + position embeddings -> n_layer x [x + attn(ln1(x)); x + mlp(ln2(x))] -> ln_f -> lm_head

Attention is written out (q @ k^T, causal mask, softmax, @ v) so it can be read on one
screen and so its weights, one (T, T) map per head, can be handed to the demo. On CUDA,
when nobody asks for the weights, PyTorch's fused kernel computes the same thing faster.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_TYPE = "gpt40k"
LIMITS = {"vocab_size": 2**16, "block_size": 8192, "n_layer": 128, "n_head": 256, "n_embd": 8192}


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
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        for name, limit in LIMITS.items():  # a config decides memory: refuse sizes no character model needs
            if getattr(self, name) > limit:
                raise ValueError(f"{name} = {getattr(self, name)} is over this project's limit of {limit}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return {"model_type": MODEL_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GPTConfig":
        if not isinstance(data, dict):
            raise ValueError(f"a config is a JSON object, not {type(data).__name__}")
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ValueError(f"model_type is {data.get('model_type')!r}, not {MODEL_TYPE!r}: not a GPT-40k model")
        known = {f.name for f in fields(cls)}
        missing = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd"} - data.keys()
        if missing:
            raise ValueError(f"config is missing {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


class GPTOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, vocab_size)
    loss: torch.Tensor | None  # mean cross-entropy when targets were given
    attentions: list[torch.Tensor] | None  # per layer, (B, n_head, T, context length)


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


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks come from random bytes, eight per 64-bit draw.

    PyTorch's CPU dropout draws one random number per element: on the seed preset's
    (64, 6, 256, 256) attention maps that was 40% of a training step here. Rounding ``p`` to a
    multiple of 1/256 (0.2 becomes 0.1992) lets one draw serve eight elements, several times
    cheaper. GPUs draw fast anyway and keep the exact ``p``.
    """

    def forward(self, x):
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        threshold = round(self.p * 256)  # an element is dropped when its random byte is below this
        # random_(-2**63, None) draws all 64 bits (plain random_() leaves the sign bit at 0)
        words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64, device=x.device).random_(-2**63, None)
        random_bytes = words.view(torch.uint8)[: x.numel()].view(x.shape)
        return x.masked_fill(random_bytes < threshold, 0.0) * (256 / (256 - threshold))


def causal_mask(T: int, past: int, device) -> torch.Tensor:
    """(T, past + T): True where new position i (at past + i) may look at key j, j <= past + i.
    No peeking ahead. Built per call: small, where a block x block buffer per layer was not."""
    return torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past)


class CausalSelfAttention(nn.Module):
    """n_head heads side by side. Each head has its own query, key and value projection of
    head_size channels; one Linear computes all of them at once, then a view splits them per head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.head_size = config.n_head, config.head_size
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = Dropout(config.dropout)
        self.resid_dropout = Dropout(config.dropout)
        self.dropout = config.dropout
        self.kernel = "auto"  # set by GPT.set_attention_kernel

    def forward(self, x, cache: KVCache | None = None, layer: int = 0, return_attention: bool = False):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size): every head works on its own slice of channels.
        q, k, v = (t.view(B, T, self.n_head, self.head_size).transpose(1, 2) for t in (q, k, v))
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v)  # keys/values of positions 0 .. past+T-1

        fused = self.kernel == "fused" or (self.kernel == "auto" and q.device.type == "cuda")
        if fused and not return_attention:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if past == 0 or T == 1 else causal_mask(T, past, q.device),
                is_causal=past == 0 and T > 1,
                dropout_p=self.dropout if self.training else 0.0)
            weights = None
        else:
            # Scaling q rather than the scores divides a (T, head_size) tensor, not a (T, T) one.
            scores = (q / math.sqrt(self.head_size)) @ k.transpose(-2, -1)  # (B, nh, T, past+T)
            if T > 1:  # one new position (generation) may see every key: nothing to mask
                scores.masked_fill_(~causal_mask(T, past, q.device), float("-inf"))
            weights = F.softmax(scores, dim=-1)  # each row: how much a position attends to each earlier one
            weights = weights.to(v.dtype)  # under bf16 autocast softmax answers in fp32: halve the traffic
            y = self.attn_dropout(weights) @ v  # (B, nh, T, head_size)
        y = y.transpose(1, 2).reshape(B, T, C)  # the heads' outputs side by side again
        return self.resid_dropout(self.proj(y)), (weights if return_attention else None)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = nn.GELU() if config.activation == "gelu" else nn.ReLU()
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

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
        self.dropout = Dropout(config.dropout)
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

    def set_attention_kernel(self, kernel: str = "auto", device: torch.device | str | None = None) -> None:
        """"math" (explicit matmul-softmax), "fused" (scaled_dot_product_attention) or "auto".

        "auto" decides at each call from where the tensors are: on CPU the explicit version trained
        faster at batch 64 x block 256 (bench/speed.py); on CUDA the fused kernel wins
        (bench/gpu_check.py). So GPT(cfg).to("cuda") gets the fused kernel with no call here.
        ``device`` is accepted for old callers and ignored.
        """
        if kernel not in ("auto", "math", "fused"):
            raise ValueError(f"attention kernel must be 'auto', 'math' or 'fused', got {kernel!r}")
        for block in self.blocks:
            block.attn.kernel = kernel

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
            raise ValueError(
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
        from .generation import stream

        new = [step.token for step in stream(self, idx, max_new_tokens, **sampling)]
        return torch.cat([idx, torch.stack(new, dim=1)], dim=1) if new else idx

    # ---- Hugging Face style persistence ------------------------------------------------
    def save_pretrained(self, folder: str | Path, tokenizer=None) -> Path:
        """Write config.json and model.safetensors (and tokenizer.json when given) into ``folder``."""
        from .checkpoint import save_model

        return save_model(self, folder, tokenizer)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, device: str | torch.device = "cpu",
                        **hub_kwargs) -> "GPT":
        """Load from a local folder, a run folder (its best checkpoint) or a Hub id ``user/name[@rev]``.
        Needs config.json and model.safetensors only (the tokenizer is CharTokenizer.from_pretrained)."""
        from .checkpoint import load_gpt
        from .hub import resolve_model_dir

        return load_gpt(resolve_model_dir(str(name_or_path), **hub_kwargs), device)

    def push_to_hub(self, repo_id: str, tokenizer=None, **kwargs) -> str:
        from .hub import push_model

        return push_model(self, repo_id, tokenizer=tokenizer, **kwargs)


def read_config(folder: str | Path) -> GPTConfig:
    path = Path(folder) / CONFIG_FILE
    try:
        return GPTConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {CONFIG_FILE} in {folder}: not a GPT-40k checkpoint folder") from None
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise ValueError(f"{path} is not a valid GPT-40k config: {e}") from None
