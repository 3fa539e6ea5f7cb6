"""Two CPU speed-ups for training, each checked against the plain code in model.py.

On a CPU a training step at the seed preset (batch 64 x block 256, 6 heads) spent most of its
time not in matrix products but in passes over the (64, 6, 256, 256) attention maps, 100 MB
each in fp32: mask, softmax, dropout, their backward passes, and copies. Memory, not arithmetic,
set the pace, and most on the CPUs without bf16 (bench/speed.py --profile):

- ``chunked_causal_attention`` computes attention one tile at a time: a few (batch, head) maps,
  64 query rows, and only the keys those rows may see (the rest is masked: 5/8 of the work at
  T = 256). Every pass over a tile happens in cache, and the backward pass recomputes its tiles
  instead of storing the maps (FlashAttention's trade). Same arithmetic as the lecture's code,
  same dropout draws; it agrees with ``model.causal_attention`` to rounding
  (tests/test_cpu_kernels.py).
- ``ByteDropout`` draws eight dropout decisions per 64-bit random number and applies them as a
  multiplier. That needs the drop probability to be a multiple of 1/256: **0.2 becomes 0.1992**.
  This changes the numbers, so it is off for ``--attention math``, the exact reference
  (PyTorch's own dropout).

GPUs have fast random numbers and a fused attention kernel, so neither is used there; nor under
``torch.compile``, which fuses the plain code and draws its own random numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

MAP_CHUNK_BYTES = 2 << 20  # scores of one tile of maps: small enough to stay in a core's cache
ROW_BLOCK = 64  # query rows per tile: the keys after a tile's last row are skipped (masked anyway)


def dropout_threshold(p: float) -> int:
    """An element is dropped when its random byte is below this: p rounded to a multiple of 1/256."""
    return round(p * 256)


def random_bytes(n: int, device=None) -> torch.Tensor:
    """``n`` uniformly random bytes (uint8) from the default generator, eight per 64-bit draw."""
    # random_(-2**63, None) draws all 64 bits (plain random_() leaves the sign bit at 0)
    words = torch.empty((n + 7) // 8, dtype=torch.int64, device=device).random_(-2**63, None)
    return words.view(torch.uint8)[:n]


def keep_scale(noise: torch.Tensor, threshold: int, dtype) -> torch.Tensor:
    """Dropout as a multiplier: 0 where the random byte is below ``threshold``, else 1 / (1 - p).
    Multiplying by it is ~20x faster on CPU than ``masked_fill`` and gives the same numbers."""
    return (noise >= threshold).to(dtype).mul_(256 / (256 - threshold))


class ByteDropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks come from random bytes, with p rounded to 1/256 (see above).

    PyTorch's CPU dropout draws one random number per element: on the seed preset's attention
    maps that was 40% of a training step. ``exact = True`` (set by ``--attention math``) or a
    GPU gives PyTorch's dropout with the exact p.
    """

    exact = False

    def forward(self, x):
        if self.exact or not self.training or self.p == 0 or x.device.type != "cpu" or torch.compiler.is_compiling():
            return super().forward(x)  # the compiler generates its own fast random numbers
        return x * keep_scale(random_bytes(x.numel(), x.device).view(x.shape), dropout_threshold(self.p), x.dtype)


def causal_bias(T: int, past: int, dtype, device) -> torch.Tensor:
    """(T, past + T): 0 where new position i may look at key j (j <= past + i), -inf after."""
    return torch.full((T, past + T), float("-inf"), dtype=dtype, device=device).triu_(past + 1)


class _ChunkedAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + causal) with dropout, @ v; (B, H, T, d) in, (B, H, T, d) out.

    Keys may be longer than queries (``past`` cached positions come first). Under bf16 the
    products run in bf16 and the softmax in fp32, like autocast does for the plain code.
    """

    @staticmethod
    def forward(ctx, q, k, v, dropout_p: float):
        with torch.autocast("cpu", enabled=False):
            B, H, T, D = q.shape
            L = k.shape[2]
            dtype = q.dtype
            q = (q / math.sqrt(D)).reshape(B * H, T, D)  # as causal_attention scales it
            k, v = k.to(dtype).reshape(B * H, L, D), v.to(dtype).reshape(B * H, L, D)
            threshold = dropout_threshold(dropout_p)
            noise = random_bytes(B * H * T * L, q.device).view(B * H, T, L) if threshold else None
            ctx.save_for_backward(q, k, v, noise)
            ctx.threshold, ctx.shape = threshold, (B, H, T, D)
            y = torch.empty(B * H, T, D, dtype=dtype, device=q.device)
            bias = causal_bias(T, L - T, dtype, q.device)
            for s, rows, keys in _tiles(B * H, T, L):
                keep = keep_scale(noise[s, rows, keys], threshold, _softmax_dtype(q)) if threshold else None
                weights, _ = _weights(q[s, rows], k[s, keys], bias[rows, keys], keep)
                y[s, rows] = torch.bmm(weights, v[s, keys])
            return y.view(B, H, T, D)

    @staticmethod
    def backward(ctx, dy):
        with torch.autocast("cpu", enabled=False):
            q, k, v, noise = ctx.saved_tensors
            B, H, T, D = ctx.shape
            L = k.shape[1]
            dy = dy.to(q.dtype).reshape(B * H, T, D)
            dq = torch.empty_like(q)
            # keys get gradient from several row blocks: add them up in at least fp32
            dk, dv = (torch.zeros(t.shape, dtype=_softmax_dtype(q), device=q.device) for t in (k, v))
            bias = causal_bias(T, L - T, q.dtype, q.device)
            for s, rows, keys in _tiles(B * H, T, L):
                keep = keep_scale(noise[s, rows, keys], ctx.threshold, _softmax_dtype(q)) if ctx.threshold else None
                weights, probs = _weights(q[s, rows], k[s, keys], bias[rows, keys], keep)  # recomputed, not stored
                dv[s, keys] += torch.bmm(weights.transpose(1, 2), dy[s, rows])
                d_weights = torch.bmm(dy[s, rows], v[s, keys].transpose(1, 2)).to(probs.dtype)
                if keep is not None:  # dropout's backward: the same multiplier
                    d_weights.mul_(keep)
                d_scores = torch._softmax_backward_data(d_weights, probs, -1, probs.dtype).to(q.dtype)
                dq[s, rows] = torch.bmm(d_scores, k[s, keys])
                dk[s, keys] += torch.bmm(d_scores.transpose(1, 2), q[s, rows])
            dq.div_(math.sqrt(D))  # q was scaled before the product
            return (dq.view(B, H, T, D), dk.to(q.dtype).view(B, H, L, D), dv.to(q.dtype).view(B, H, L, D), None)


def _softmax_dtype(q: torch.Tensor) -> torch.dtype:
    return torch.promote_types(q.dtype, torch.float32)  # bf16 products, fp32 softmax, like autocast


def _tiles(n_maps: int, T: int, L: int):
    """(maps, query rows, keys) to compute at once. Rows come in blocks of ROW_BLOCK, and a block
    skips the keys after its last row, all masked (causal): 5/8 of the work at T = 256. Maps come
    in chunks of about MAP_CHUNK_BYTES per tile, so every pass over a tile stays in cache."""
    past = L - T
    per_chunk = max(1, MAP_CHUNK_BYTES // (4 * min(T, ROW_BLOCK) * L))
    tiles = []
    for m in range(0, n_maps, per_chunk):
        for r in range(0, T, ROW_BLOCK):
            end = min(r + ROW_BLOCK, T)
            tiles.append((slice(m, min(m + per_chunk, n_maps)), slice(r, end), slice(0, past + end)))
    return tiles


def _weights(q, k, bias, keep) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights after dropout, in the products' dtype; softmax probabilities, at least fp32)
    of a tile; ``keep`` is dropout's multiplier (None without dropout)."""
    probs = torch.baddbmm(bias, q, k.transpose(1, 2)).softmax(-1, dtype=_softmax_dtype(q))
    if keep is None:
        return probs.to(q.dtype), probs
    return (probs * keep).to(q.dtype), probs


def chunked_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0):
    """Causal attention of ``q`` (B, H, T, d) over ``k``, ``v`` (B, H, past + T, d), tile by tile."""
    return _ChunkedAttention.apply(q, k, v, dropout_p)
