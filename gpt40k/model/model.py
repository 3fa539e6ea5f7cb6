"""A character-level GPT: the decoder-only transformer of Karpathy's "Let's build GPT".

    token + position embeddings -> n_layer x [x + attn(ln1(x)); x + mlp(ln2(x))] -> ln_f -> lm_head

Read it top to bottom: ``causal_attention`` (the lecture's attention, one screen), the heads
that use it, the MLP, a block, the model. ``causal_attention`` is also what the demo shows: its
weights, one (T, T) map per head. On GPUs PyTorch's fused kernel computes the same faster where
nobody asks for the weights; ``--attention math`` keeps this file's code everywhere. The sizes are
``config.GPTConfig``; saving, loading and the Hub come from ``pretrained.PretrainedMixin``; the
fast sampler is ``gpt40k.generate``; the CPU training kernels are swapped in from outside by
``gpt40k.training.cpu_kernels.use_cpu_kernels``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .config import GPTConfig
from .pretrained import PretrainedMixin

KERNELS = ("auto", "math", "fused")


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
    (see ``gpt40k.generate``), since learned absolute positions cannot simply shift.
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
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.kernel = "auto"  # set by GPT.set_attention_kernel

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of ``x`` (B, T, C), each (B, n_head, T, head_size): every head its own slice of channels."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        return tuple(t.view(B, T, self.n_head, self.head_size).transpose(1, 2) for t in (q, k, v))

    def forward(self, x, cache: KVCache | None = None, layer: int = 0, return_attention: bool = False):
        B, T, C = x.shape
        q, k, v = self.split_heads(x)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # keys/values of positions 0 .. past+T-1
        y, weights = self.attend(q, k, v, return_attention)
        y = y.transpose(1, 2).reshape(B, T, C)  # the heads' outputs side by side again
        return self.resid_dropout(self.proj(y)), weights

    def attend(self, q, k, v, return_attention: bool):
        """``causal_attention``; or, where nobody asks for the weights, PyTorch's fused kernel:
        on GPUs by default ("auto"), everywhere with "fused"."""
        fused = self.kernel == "fused" or (self.kernel == "auto" and q.device.type != "cpu")
        if return_attention or not fused:
            return causal_attention(q, k, v, self.attn_dropout)
        T, past = q.size(2), k.size(2) - q.size(2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if past == 0 or T == 1 else causal_mask(T, past, q.device),
            is_causal=past == 0 and T > 1, dropout_p=self.attn_dropout.p if self.training else 0.0)
        return y, None


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = nn.GELU() if config.activation == "gelu" else nn.ReLU()
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

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


class GPT(PretrainedMixin, nn.Module):
    """The model. ``PretrainedMixin`` adds save_pretrained / from_pretrained / push_to_hub, Hugging Face style."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
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

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_attention_kernel(self, kernel: str = "auto") -> None:
        """"auto" (default: PyTorch's fused kernel on GPUs, this file's code on CPUs), "math" (this
        file's ``causal_attention`` everywhere, the exact reference) or "fused" (PyTorch's everywhere)."""
        if kernel not in KERNELS:
            raise ConfigError(f"attention kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
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
            raise ConfigError(
                f"{past + T} positions exceed the model's block_size of {self.config.block_size}: "
                "feed at most the last block_size characters (gpt40k.generate slides the window for you)")
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
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The lecture's loop: append ``max_new_tokens`` sampled tokens to ``idx`` (B, T), each from a
        full forward pass over the last block_size tokens (call ``eval()`` first). ``gpt40k.generate.stream``
        with ``slide=1`` draws the same characters from the same generator with a KV cache, many times
        faster, and has top-p and the attention besides."""
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.config.block_size:]).logits[:, -1, :].float()
            if temperature < 1e-3:  # greedy
                next_id = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None and top_k < logits.size(-1):  # only the k likeliest may be drawn
                    kth = torch.topk(logits, top_k).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_id = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, next_id], dim=1)
        return idx
