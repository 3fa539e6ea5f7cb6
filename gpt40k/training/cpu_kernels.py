"""Two CPU speed-ups for training, each checked against the plain code in model.py, swapped into
a model from outside by one call, ``use_cpu_kernels(model)``, which ``set_attention`` (what
``--attention`` means, for the trainer and the benchmarks alike) makes on CPUs with ``auto``.

On a CPU a training step at the seed preset (batch 64 x block 256, 6 heads) spent most of its
time not in matrix products but in passes over the (64, 6, 256, 256) attention maps, 100 MB
each in fp32: mask, softmax, dropout, their backward passes, and copies. Memory, not arithmetic,
set the pace, and most on the CPUs without bf16 (bench/speed.py --profile):

- ``chunked_causal_attention`` computes attention one tile at a time: the maps of a few batch
  entries, 64 query rows, and only the keys those rows may see (the rest is masked: 5/8 of the
  work at T = 256). Every pass over a tile happens in cache, and the backward pass recomputes its
  tiles instead of storing the maps (FlashAttention's trade). Inputs and outputs keep the
  (B, T, heads, head_size) layout of the projections, so no whole tensor is ever transposed.
  Same arithmetic as the lecture's code, same dropout draws; it agrees with
  ``model.causal_attention`` to rounding (tests/test_cpu_kernels.py).
- ``ByteDropout`` draws eight dropout decisions per 64-bit random number and applies them as a
  multiplier. That needs the drop probability to be a multiple of 1/256: **0.2 becomes 0.1992**.
  This changes the numbers, so ``--attention math``, the exact reference, leaves the model as
  model.py builds it (PyTorch's own dropout).

GPUs have fast random numbers and a fused attention kernel, so neither is used there; nor under
``torch.compile``, which fuses the plain code and draws its own random numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..model.model import CausalSelfAttention, causal_attention

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
    maps that was 40% of a training step. On a GPU it is PyTorch's dropout with the exact p.
    """

    def forward(self, x):
        if not self.training or self.p == 0 or x.device.type != "cpu" or torch.compiler.is_compiling():
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
            k, v = k.to(q.dtype), v.to(q.dtype)
            threshold = dropout_threshold(dropout_p)
            noise = random_bytes(B * H * T * L, q.device).view(B, H, T, L) if threshold else None
            ctx.save_for_backward(q, k, v, noise)
            ctx.threshold = threshold
            # (B, T, H, D) underneath: the heads side by side again is then a view, not a copy
            y = torch.empty(B, T, H, D, dtype=q.dtype, device=q.device)
            bias = causal_bias(T, L - T, q.dtype, q.device)
            for b in _batch_chunks(B, H, T, L):
                qc, kc, vc = _maps(q, b, scale=math.sqrt(D)), _maps(k, b), _maps(v, b)
                noise_c = noise[b].reshape(-1, T, L) if threshold else None
                for rows, keys in _row_blocks(T, L):
                    keep = keep_scale(noise_c[:, rows, keys], threshold, _softmax_dtype(q)) if threshold else None
                    weights, _ = _weights(qc[:, rows], kc[:, keys], bias[rows, keys], keep)
                    y[b, rows] = torch.bmm(weights, vc[:, keys]).unflatten(0, (-1, H)).transpose(1, 2)
            return y.transpose(1, 2)

    @staticmethod
    def backward(ctx, dy):
        with torch.autocast("cpu", enabled=False):
            q, k, v, noise = ctx.saved_tensors
            B, H, T, D = q.shape
            L = k.shape[2]
            dy = dy.to(q.dtype)  # once, not per chunk
            acc = _softmax_dtype(q)  # keys get gradient from several row blocks: add up in at least fp32
            dq, dk, dv = (torch.empty(B, n, H, D, dtype=q.dtype, device=q.device) for n in (T, L, L))
            bias = causal_bias(T, L - T, q.dtype, q.device)
            for b in _batch_chunks(B, H, T, L):
                qc, kc, vc = _maps(q, b, scale=math.sqrt(D)), _maps(k, b), _maps(v, b)
                dyc = _maps(dy, b)
                noise_c = noise[b].reshape(-1, T, L) if ctx.threshold else None
                dqc = torch.empty_like(qc)
                dkc, dvc = (torch.zeros(t.shape, dtype=acc, device=q.device) for t in (kc, vc))
                for rows, keys in _row_blocks(T, L):
                    keep = keep_scale(noise_c[:, rows, keys], ctx.threshold, acc) if ctx.threshold else None
                    weights, probs = _weights(qc[:, rows], kc[:, keys], bias[rows, keys], keep)  # recomputed
                    dvc[:, keys] += torch.bmm(weights.transpose(1, 2), dyc[:, rows])
                    d_weights = torch.bmm(dyc[:, rows], vc[:, keys].transpose(1, 2)).to(acc)
                    if keep is not None:  # dropout's backward: the same multiplier
                        d_weights.mul_(keep)
                    d_scores = torch._softmax_backward_data(d_weights, probs, -1, acc).to(q.dtype)
                    dqc[:, rows] = torch.bmm(d_scores, kc[:, keys])
                    dkc[:, keys] += torch.bmm(d_scores.transpose(1, 2), qc[:, rows])
                dqc.div_(math.sqrt(D))  # q was scaled before the product
                for grad, chunk in ((dq, dqc), (dk, dkc), (dv, dvc)):
                    grad[b] = chunk.to(q.dtype).unflatten(0, (-1, H)).transpose(1, 2)
            return dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2), None


def _softmax_dtype(q: torch.Tensor) -> torch.dtype:
    return torch.promote_types(q.dtype, torch.float32)  # bf16 products, fp32 softmax, like autocast


def _batch_chunks(B: int, H: int, T: int, L: int) -> list[slice]:
    """Whole batch entries (all their heads) per chunk, about MAP_CHUNK_BYTES of scores per tile."""
    per_chunk = max(1, MAP_CHUNK_BYTES // (4 * H * min(T, ROW_BLOCK) * L))
    return [slice(b, min(b + per_chunk, B)) for b in range(0, B, per_chunk)]


def _row_blocks(T: int, L: int) -> list[tuple[slice, slice]]:
    """(query rows, keys) of each tile: ROW_BLOCK rows and only the keys up to the last of them
    (the rest is masked, causal): 5/8 of the work at T = 256."""
    blocks = []
    for start in range(0, T, ROW_BLOCK):
        end = min(start + ROW_BLOCK, T)
        blocks.append((slice(start, end), slice(0, L - T + end)))  # L - T: the cached positions first
    return blocks


def _maps(x: torch.Tensor, b: slice, scale: float | None = None) -> torch.Tensor:
    """The (batch entry, head) maps of chunk ``b`` as one (maps, positions, head_size) batch,
    divided by ``scale`` when given: a small copy that stays in cache, where a copy of the whole
    tensor would not (q, k and v arrive as views of the (B, T, 3C) projection)."""
    maps = x[b].reshape(-1, x.size(2), x.size(3))  # a copy, unless x is laid out that way already
    if scale is None:
        return maps
    return maps / scale if maps._is_view() else maps.div_(scale)  # never scale the caller's tensor


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


class CPUCausalSelfAttention(CausalSelfAttention):
    """The model's attention, with ``chunked_causal_attention`` where it helps: on a CPU, over more
    than one new position, when nobody asks for the weights, outside ``torch.compile``."""

    def attend(self, q, k, v, return_attention: bool):
        if return_attention or q.device.type != "cpu" or q.size(2) == 1:
            return super().attend(q, k, v, return_attention)
        if torch.compiler.is_compiling():  # the compiler fuses the plain code itself
            return causal_attention(q, k, v, self.attn_dropout)
        return chunked_causal_attention(q, k, v, self.attn_dropout.p if self.training else 0.0), None


def use_cpu_kernels(model: nn.Module) -> nn.Module:
    """Swap this file's kernels into ``model`` (a GPT), in place: every ``nn.Dropout`` becomes a
    ``ByteDropout`` (p rounded to 1/256: 0.2 -> 0.1992) and every attention a
    ``CPUCausalSelfAttention``. The weights, their names and the state dict stay as they are, so a
    checkpoint saved from either loads into both."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is nn.Dropout:
                setattr(module, name, ByteDropout(child.p, child.inplace).train(child.training))
    for module in model.modules():
        if type(module) is CausalSelfAttention:
            module.__class__ = CPUCausalSelfAttention  # same parameters and buffers, one method more
    return model


def set_attention(model: nn.Module, choice: str, device: torch.device | str) -> nn.Module:
    """What ``--attention CHOICE`` means for ``model`` (a GPT) training on ``device``: the kernel
    model.py uses ("auto", "math", "fused"), and on a CPU with "auto" this file's kernels too."""
    model.set_attention_kernel(choice)
    if choice == "auto" and torch.device(device).type == "cpu":
        use_cpu_kernels(model)
    return model
