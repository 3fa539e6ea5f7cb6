"""A generation, step by step, as the page shows it: each written character with the choice the
model had, and for each character the model *read*, every head's attention over its context.

Positions are absolute positions in the text the page shows (prompt first). Character ``p`` is
read in the forward pass that follows its writing, so its attention row arrives one step after
it: step 1 brings the rows of the whole prompt, step k the row of the character step k-1 wrote.
Rows are kept as the model computed them when it first read the character: when the context
window jumps (``gpt40k.generate``), earlier rows are recomputed, but the page shows the first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import interpret
from ..generate.sampling import stream
from ..model.model import GPT
from ..model.tokenizer import CharTokenizer
from .request import GenerationRequest, clamp_request, fit_to_budget

TOP_N = 10  # candidates kept per step
LENS_N = 3  # characters kept per layer of the logit lens
TIME_BUDGET_S = 60.0  # no request holds the model longer than this


@dataclass
class StepRecord:
    """One written character and the choice it came from (probabilities after the knobs)."""

    char: str
    prob: float
    candidates: list[tuple[str, float]]  # the TOP_N likeliest, best first
    # With ``explain``: the logit lens (per layer, the embedding first, its LENS_N likeliest characters
    # before the knobs) and each head's direct push on the written character's logit (layers x heads).
    lens: list[list[tuple[str, float]]] | None = None
    pushes: list[list[float]] | None = None


@dataclass
class AttentionRow:
    """What every head looked at while reading the character at ``position``.

    ``weights`` (layers, heads, position - first_key + 1) covers the keys first_key..position,
    the context window at the time.
    """

    position: int
    first_key: int
    weights: np.ndarray


@dataclass
class StepEvent:
    index: int  # 1-based step number within the transcript
    step: StepRecord
    rows: list[AttentionRow]


@dataclass
class Transcript:
    prompt: str  # the text the run continues (for a branch: everything before the new steps)
    notes: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    rows: dict[int, AttentionRow] = field(default_factory=dict)
    timed_out: bool = False
    request: GenerationRequest | None = None  # as written: numbers clamped, the length fitted to memory

    @property
    def text(self) -> str:
        return self.prompt + "".join(s.char for s in self.steps)

    def add(self, event: StepEvent) -> None:
        self.steps.append(event.step)
        for row in event.rows:
            self.rows[row.position] = row


def _rows(attentions: list[torch.Tensor], last_position: int, window: int, count: int) -> list[AttentionRow]:
    """The last ``count`` query rows of one forward pass. ``attentions``: per layer
    (1, heads, T, window), where query i of T can see keys 0 .. window - T + i."""
    stacked = torch.stack([a[0] for a in attentions]).float().cpu().numpy()  # (layers, heads, T, window)
    T = stacked.shape[2]
    first_key = last_position - window + 1
    rows = []
    for i in range(T - count, T):
        position = last_position - (T - 1 - i)
        rows.append(AttentionRow(position, first_key, stacked[:, :, i, : position - first_key + 1]))
    return rows


def _tops(probs: torch.Tensor, n: int, tok: CharTokenizer) -> list[list[tuple[str, float]]]:
    """Each row's ``n`` likeliest characters of ``probs`` (rows, vocab), with their probabilities."""
    top = torch.topk(probs, min(n, probs.size(-1)), dim=-1)
    return [[(tok.chars[i], p) for p, i in zip(ps, ids) if p > 0]
            for ps, ids in zip(top.values.tolist(), top.indices.tolist())]


def _record(probs: torch.Tensor, token: int, tok: CharTokenizer) -> StepRecord:
    return StepRecord(tok.chars[token], float(probs[token]), _tops(probs[None], TOP_N, tok)[0])


EXPLAIN_BATCH = 16  # steps explained together: a few batched operations for all, not a few for each


class _Explainer:
    """The page's logit lens and heads' pushes, for steps gathered and explained EXPLAIN_BATCH at a time."""

    def __init__(self, model: GPT, tok: CharTokenizer):
        self.model, self.tok = model, tok
        self.weights = interpret.projections(model)  # once a generation: the pushes' weights
        self.events: list[StepEvent] = []
        self.tokens: list[int] = []
        self.residual: list[torch.Tensor] = []  # per step (n_layer + 1, n_embd): the stream after each part
        self.heads_out: list[torch.Tensor] = []  # per step (n_layer, n_embd): each block's heads' outputs

    def add(self, event: StepEvent, token: int, residual: torch.Tensor, heads_out: torch.Tensor) -> None:
        self.events.append(event)
        self.tokens.append(token)
        self.residual.append(residual)
        self.heads_out.append(heads_out)

    def flush(self) -> list[StepEvent]:
        """The gathered steps, each with its lens and pushes."""
        if not self.events:
            return []
        residual = torch.stack(self.residual)
        lens = _tops(interpret.lens(self.model, residual).flatten(0, 1), LENS_N, self.tok)
        pushes = interpret.direct_pushes(self.model, residual[:, -1], torch.stack(self.heads_out),
                                         torch.tensor(self.tokens), self.weights)
        layers = residual.size(1)
        for k, (event, step_pushes) in enumerate(zip(self.events, pushes.tolist())):
            event.step.lens = lens[k * layers:(k + 1) * layers]
            event.step.pushes = [[round(v, 3) for v in layer] for layer in step_pushes]
        events = self.events
        self.events, self.tokens, self.residual, self.heads_out = [], [], [], []
        return events


def _prompt_internals(model: GPT, window: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The first step's stream and heads' outputs, which the prompt's forward pass did not keep."""
    inside = interpret.internals(model, torch.tensor([window], device=model.device))
    residual = torch.stack([inside.embedding[0, -1], *(r[0, -1] for r in inside.residual)])
    return residual, torch.stack([h[0, -1] for h in inside.heads_out])


def generate(model: GPT, tok: CharTokenizer, req: GenerationRequest, *, branch: tuple[str, str] | None = None,
             time_budget_s: float = TIME_BUDGET_S, notes: list[str] | None = None, explain: bool = False
             ) -> Iterator[tuple[Transcript, StepEvent]]:
    """Yield the growing Transcript and the newest StepEvent after each written character.

    ``branch=(text, char)`` continues ``text + char`` instead of the prompt: a visitor forced
    ``char`` where the model wrote something else. Its first event carries only the forced
    character's row (the rows before it were sent with the original run). ``notes`` come first in
    the transcript's (what the caller changed, e.g. heads knocked out). ``explain``: each step also
    carries its logit lens and the heads' direct pushes (``StepRecord``), for the page.
    """
    req, clamped = clamp_request(req)
    block = model.config.block_size
    if branch is None:
        cleaned = tok.encode_prompt(req.prompt, max_chars=block)
        rows_first = len(cleaned.ids)
    else:  # the whole text: the window keeps the last block_size of it
        cleaned = tok.encode_prompt(branch[0] + branch[1])
        rows_first = 1
    ids, prompt = cleaned.ids, cleaned.text
    cfg = model.config
    keep, max_new, cost_notes = fit_to_budget(len(ids), req.max_new_chars, cfg.n_layer, cfg.n_head, block)
    if keep < len(ids):  # a branch's text or a long prompt on a model with a huge attention
        ids, prompt, rows_first = ids[-keep:], prompt[-keep:], min(rows_first, keep)
    req = replace(req, max_new_chars=max_new)
    transcript = Transcript(prompt, list(notes or []) + cleaned.notes + clamped + cost_notes, request=req)
    generator = torch.Generator(model.device).manual_seed(req.seed)  # per request: users never share one
    steps = stream(model, ids, req.max_new_chars, temperature=req.temperature, top_k=req.top_k or None,
                   top_p=req.top_p if req.top_p < 1 else None, generator=generator, return_attention=True,
                   return_internals=explain)
    explainer = _Explainer(model, tok) if explain else None
    deadline = time.monotonic() + time_budget_s
    for i, step in enumerate(steps):
        last_read = len(prompt) - 1 + i
        rows = _rows(step.attentions, last_read, step.window, rows_first if i == 0 else 1)
        token = int(step.token[0])
        # The choice is read on the host: one copy from a GPU rather than one per number read.
        event = StepEvent(i + 1, _record(step.probs[0].cpu(), token, tok), rows)
        ready = [event]
        if explainer is not None:
            if step.internals is None:  # the first step: explained at once, so the page starts at once
                explainer.add(event, token, *_prompt_internals(model, ids[-block:]))
            else:
                explainer.add(event, token, torch.stack(step.internals.residual)[:, 0],
                              torch.stack(step.internals.heads_out)[:, 0])
            due = (i == 0 or len(explainer.events) == EXPLAIN_BATCH or i + 1 == req.max_new_chars
                   or time.monotonic() > deadline)
            ready = explainer.flush() if due else []
        for ev in ready:
            transcript.add(ev)
            yield transcript, ev
        if time.monotonic() > deadline:  # (a due deadline explained the pending steps above)
            transcript.timed_out = True
            transcript.notes.append(f"Stopped after {time_budget_s:g} s (the time one request may take).")
            return
