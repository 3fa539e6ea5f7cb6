"""Two CPU speed-ups for training, each checked against the plain code in model.py.

On a CPU a training step at the seed preset (batch 64 x block 256, 6 heads) spends most of its
time not in matrix products but in passes over the (64, 6, 256, 256) attention maps, 100 MB
each in fp32: mask, softmax, dropout, their backward passes, and copies. Memory, not arithmetic,
sets the pace, and most on the CPUs without bf16 (bench/speed.py):

- ``chunked_causal_attention`` computes attention a few (batch, head) maps at a time, so every
  pass over a map happens in cache, and recomputes the maps in the backward pass instead of
  storing them (FlashAttention's trade, by whole maps). Same arithmetic as the lecture's code,
  same dropout draws; it agrees with ``model.causal_attention`` to rounding (tests/test_model.py).
- ``ByteDropout`` draws eight dropout decisions per 64-bit random number. That needs the drop
  probability to be a multiple of 1/256: **0.2 becomes 0.1992**. This changes the numbers, so it
  is off for ``--attention math``, which is the exact reference (PyTorch's own dropout).

GPUs have fast random numbers and a fused attention kernel, so neither is used there.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

MAP_CHUNK_BYTES = 2 << 20  # scores of one chunk of maps: small enough to stay in a core's cache


def dropout_threshold(p: float) -> int:
    """An element is dropped when its random byte is below this: p rounded to a multiple of 1/256."""
    return round(p * 256)


def random_bytes(n: int, device=None) -> torch.Tensor:
    """``n`` uniformly random bytes (uint8) from the default generator, eight per 64-bit draw."""
    # random_(-2**63, None) draws all 64 bits (plain random_() leaves the sign bit at 0)
    words = torch.empty((n + 7) // 8, dtype=torch.int64, device=device).random_(-2**63, None)
    return words.view(torch.uint8)[:n]


class ByteDropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks come from random bytes, with p rounded to 1/256 (see above).

    PyTorch's CPU dropout draws one random number per element: on the seed preset's attention
    maps that was 40% of a training step. ``exact = True`` (set by ``--attention math``) or a
    GPU gives PyTorch's dropout with the exact p.
    """

    exact = False

    def forward(self, x):
        if self.exact or not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        threshold = dropout_threshold(self.p)
        dropped = random_bytes(x.numel(), x.device).view(x.shape) < threshold
        return x.masked_fill(dropped, 0.0) * (256 / (256 - threshold))


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
            q = (q * (1.0 / math.sqrt(D))).reshape(B * H, T, D)
            k, v = k.to(dtype).reshape(B * H, L, D), v.to(dtype).reshape(B * H, L, D)
            threshold = dropout_threshold(dropout_p)
            noise = random_bytes(B * H * T * L, q.device).view(B * H, T, L) if threshold else None
            ctx.save_for_backward(q, k, v, noise)
            ctx.threshold, ctx.shape = threshold, (B, H, T, D)
            y = torch.empty(B * H, T, D, dtype=dtype, device=q.device)
            for s in _chunks(B * H, T, L):
                weights, _ = _weights(q, k, noise, threshold, s)
                torch.bmm(weights, v[s], out=y[s])
            return y.view(B, H, T, D)

    @staticmethod
    def backward(ctx, dy):
        with torch.autocast("cpu", enabled=False):
            q, k, v, noise = ctx.saved_tensors
            B, H, T, D = ctx.shape
            dy = dy.to(q.dtype).reshape(B * H, T, D)
            dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
            for s in _chunks(B * H, T, k.shape[1]):
                weights, probs = _weights(q, k, noise, ctx.threshold, s)  # recomputed: cheaper than storing every map
                torch.bmm(weights.transpose(1, 2), dy[s], out=dv[s])
                d_weights = torch.bmm(dy[s], v[s].transpose(1, 2)).to(probs.dtype)
                if ctx.threshold:  # dropout's backward: the same mask, the same scale
                    d_weights.masked_fill_(noise[s] < ctx.threshold, 0.0)
                    d_weights.mul_(256 / (256 - ctx.threshold))
                d_scores = torch._softmax_backward_data(d_weights, probs, -1, probs.dtype).to(q.dtype)
                torch.bmm(d_scores, k[s], out=dq[s])
                torch.bmm(d_scores.transpose(1, 2), q[s], out=dk[s])
            dq.mul_(1.0 / math.sqrt(D))  # q was scaled before the product
            return dq.view(B, H, T, D), dk.view(B, H, -1, D), dv.view(B, H, -1, D), None


def _chunks(n_maps: int, T: int, L: int):
    per_chunk = max(1, MAP_CHUNK_BYTES // (4 * T * L))
    return [slice(s, min(s + per_chunk, n_maps)) for s in range(0, n_maps, per_chunk)]


def _weights(q, k, noise, threshold: int, s: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights after dropout, in the products' dtype; softmax probabilities, at least fp32) of maps ``s``."""
    T, L = q.shape[1], k.shape[1]
    scores = torch.baddbmm(causal_bias(T, L - T, q.dtype, q.device), q[s], k[s].transpose(1, 2))
    probs = scores.softmax(-1, dtype=torch.promote_types(q.dtype, torch.float32))
    if not threshold:
        return probs.to(q.dtype), probs
    dropped = probs.masked_fill(noise[s] < threshold, 0.0).mul_(256 / (256 - threshold))
    return dropped.to(q.dtype), probs


def chunked_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0):
    """Causal attention of ``q`` (B, H, T, d) over ``k``, ``v`` (B, H, past + T, d), chunk by chunk."""
    return _ChunkedAttention.apply(q, k, v, dropout_p)
