"""Sampling, one character at a time, with a KV cache and an optional look at the attention.

The context window. The model learned positions 0..block_size-1, so it conditions on at most
the last ``block_size`` characters, like the seed. While the text fits, every new character
costs one cached position. When the window is full, the positions of everything in it would
shift by one, which invalidates every cached key and value; so the window *jumps*: it drops
its ``slide`` oldest characters and recomputes the cache for the rest in one batched pass.

- ``slide=1`` reproduces the seed exactly: always the last ``block_size`` characters, at the
  price of a full recompute for each character once the window is full.
- a larger ``slide`` keeps between ``block_size - slide + 1`` and ``block_size`` characters of
  context and recomputes ``block_size - slide`` positions once every ``slide`` characters.

The default, ``block_size // 2``, costs the shipped model nothing it can measure: read through
the window, its books' validation split gives 1.3594 nats a character with slide 128 and 1.3593
with slide 64 (bench/heldout_loss.py, docs/training.md); beyond ~130 characters of context its
loss no longer clearly falls. Against slide 64, the jumps' cost per character falls threefold: generation on one
CPU thread is a quarter faster.

Either way the logits of each step equal a full forward pass over that step's window
(tests/test_generation.py checks both, below and beyond block_size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from ..errors import GenerationError
from ..model.model import GPT
from .decoder import FastDecoder, StepInternals, one_cpu_thread


@dataclass
class Step:
    token: torch.Tensor  # (B,) the sampled ids
    probs: torch.Tensor  # (B, vocab) the distribution it was sampled from, after the knobs
    logits: torch.Tensor  # (B, vocab) raw logits, before the knobs
    window: int  # characters of context the step conditioned on
    attentions: list[torch.Tensor] | None  # per layer (B, n_head, T_new, window), when asked for
    internals: StepInternals | None = None  # the stream and the heads' outputs, when asked (not after the prompt)


class Forward(NamedTuple):
    logits: torch.Tensor  # (B, T, vocab)
    attentions: list[torch.Tensor] | None
    internals: StepInternals | None = None  # one-position steps only (FastDecoder.step)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not math.isfinite(temperature) or temperature < 0:
        raise GenerationError(f"temperature must be a number >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise GenerationError(f"top_k must be >= 1 (or None for no limit), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise GenerationError(f"top_p must be in (0, 1], got {top_p}")


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """Probabilities (B, V) after temperature, top-k and nucleus (top-p) filtering.

    ``temperature`` 0 (or below 0.001) is greedy: all the mass on the most likely token.
    """
    logits = logits.float()
    if temperature < 1e-3:  # 0 is greedy; below 1e-3 the division overflows, and the answer is greedy anyway
        return F.one_hot(logits.argmax(-1), logits.size(-1)).float()
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p: a token stays if the mass before it is < top_p.
        before = sorted_probs.cumsum(-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token (B,) per row of ``probs`` (B, V), token i with probability ``probs[:, i]``.

    The exponential race: with E_i ~ Exp(1) drawn independently, argmax_i p_i / E_i is i with
    probability p_i. ``torch.multinomial`` does exactly this for one sample, with the same draws
    from the same generator (tests/test_generation.py), but first checks its input four ways,
    each a wait for the answer: 60% of its time on a CPU, 7 us a character. One check is enough:
    probabilities are in [0, 1] or nan, so their sum is finite exactly when they all are.
    """
    if not math.isfinite(probs.sum().item()):
        raise GenerationError("the model's outputs are not finite numbers (nan or inf): its weights have "
                              "diverged. Use an earlier checkpoint (a run's best/)")
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return probs.div(race).argmax(-1)


def check_slide(slide: int | None, block_size: int) -> int:
    """``slide``, or the default (half the window) when None; an error when out of range."""
    slide = max(1, block_size // 2) if slide is None else slide
    if not 1 <= slide <= block_size:
        raise GenerationError(f"slide must be between 1 and block_size ({block_size}), got {slide}")
    return slide


class SlidingWindow:
    """Feeds tokens to the model through a KV cache, moving the window as described above."""

    def __init__(self, model: GPT, batch_size: int, slide: int | None = None):
        self.slide = check_slide(slide, model.config.block_size)
        self.model = model
        self.cache = model.new_cache(batch_size)
        self.decoder = FastDecoder(model)
        self.window: torch.Tensor | None = None  # (B, cache.length) the tokens in the cache

    def feed(self, tokens: torch.Tensor, return_attention: bool = False, return_internals: bool = False):
        """Add ``tokens`` (B, T) after what came before; return the logits (``.logits``) and, when
        asked, the attention (``.attentions``) of the new positions. One token gets the attention
        of its own position, also when the window jumps, and (when asked) the step's internals."""
        block = self.model.config.block_size
        first = self.window is None
        joined = tokens if first else torch.cat([self.window, tokens], dim=1)
        new = tokens
        if first or joined.size(1) > block:  # first call, or a full window: recompute the cache
            joined = joined[:, -(block if first else block + 1 - self.slide):]
            self.cache.reset()
            new = joined
            if not first and tokens.size(1) == 1 and joined.size(1) > 1:
                self.decoder.fill(joined[:, :-1], self.cache)  # a jump: the cache for all but the newest,
                new = joined[:, -1:]  # then the newest as any other step (its attention, when asked)
        self.window = joined
        if new.size(1) == 1 and not self.model.training:  # one character: the lean path
            with one_cpu_thread(new.device):
                return Forward(*self.decoder.step(new, self.cache, return_attention, return_internals))
        out = self.model(new, cache=self.cache, return_attention=return_attention)
        return Forward(out.logits, out.attentions)


@torch.inference_mode()
def stream(model: GPT, prompt: torch.Tensor | Sequence[int], max_new_tokens: int, *,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, slide: int | None = None,
           return_attention: bool = False, return_internals: bool = False) -> Iterator[Step]:
    """Yield one ``Step`` per new character. ``prompt`` is (B, T) or a list of ids (B = 1).
    ``return_internals``: each step after the first carries the decoder's ``StepInternals`` (the first
    comes from the prompt's forward pass, which keeps none: ``gpt40k.interpret.internals`` has them).

    Runs the model in eval mode and restores its mode afterwards. Pass a ``generator``
    (on the model's device) to make sampling reproducible and independent of other callers.
    """
    check_sampling(temperature, top_k, top_p)
    idx = torch.as_tensor(prompt, dtype=torch.long, device=model.device)
    idx = idx.unsqueeze(0) if idx.dim() == 1 else idx
    if idx.size(1) == 0:
        raise GenerationError("the prompt is empty: give at least one character (a newline is a good start)")
    was_training = model.training
    model.eval()
    try:
        window = SlidingWindow(model, idx.size(0), slide)
        out = window.feed(idx, return_attention)
        for i in range(max_new_tokens):
            logits = out.logits[:, -1, :]
            probs = next_token_distribution(logits, temperature, top_k, top_p)
            token = draw(probs, generator)
            yield Step(token, probs, logits, window.window.size(1), out.attentions, out.internals)
            if i + 1 < max_new_tokens:
                out = window.feed(token[:, None], return_attention, return_internals)
    finally:
        model.train(was_training)
