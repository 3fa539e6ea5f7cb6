"""What each head does, asked of the model you trained: the logit lens, knocking heads out, head
roles and direct logit attribution. TransformerLens answers these questions with hooks on GPT-2;
here the vocabulary is ~100 characters, so every layer's whole prediction fits on a screen.

Everything reads the model through forward hooks on the modules model.py builds (the embedding's
dropout, each block, each attention's output projection, each MLP), so there is no second copy of
the forward pass to keep equal to the first. Heads are named 1-based, as on the page: ``L2H3`` is
layer 2, head 3 (``(1, 2)`` in 0-based code).
"""

from __future__ import annotations

import math
import re
import threading
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .generate import stream
from .model import GPT, CharTokenizer

Head = tuple[int, int]  # (layer, head), 0-based
PUNCTUATION = set(".,;:!?\"'()[]-—–…")


# ---- naming heads ---------------------------------------------------------------------------
def parse_heads(spec: str | None, n_layer: int, n_head: int) -> list[Head]:
    """``"L2H3,L1H1"`` (1-based, as printed) -> ``[(1, 2), (0, 0)]``; empty or None -> []."""
    heads: list[Head] = []
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        m = re.fullmatch(r"[Ll](\d+)[Hh](\d+)", part)
        if not m:
            raise ConfigError(f"{part!r} is not a head: write L<layer>H<head>, e.g. L2H3 "
                              f"(layers 1-{n_layer}, heads 1-{n_head})")
        layer, head = int(m[1]), int(m[2])
        if not (1 <= layer <= n_layer and 1 <= head <= n_head):
            raise ConfigError(f"{part} is not in this model: it has layers 1-{n_layer} and heads 1-{n_head}")
        if (layer - 1, head - 1) not in heads:
            heads.append((layer - 1, head - 1))
    return heads


def head_name(head: Head) -> str:
    return f"L{head[0] + 1}H{head[1] + 1}"


def all_heads_but(heads: list[Head], n_layer: int, n_head: int) -> list[Head]:
    """"Keep only these heads": every other head, to knock out."""
    return [(layer, h) for layer in range(n_layer) for h in range(n_head) if (layer, h) not in heads]


def heads_to_knock_out(spec: str | None, n_layer: int, n_head: int, keep_only: bool = False) -> list[Head]:
    """The heads ``spec`` names, or with ``keep_only`` every other head; [] when it names none."""
    heads = parse_heads(spec, n_layer, n_head)
    return all_heads_but(heads, n_layer, n_head) if keep_only and heads else heads


# ---- knocking heads out -----------------------------------------------------------------------
def _columns(model: GPT, head: Head) -> tuple[torch.Tensor, slice]:
    """The output projection's weight of ``head``'s block, and that head's columns of it."""
    size = model.config.head_size
    return model.blocks[head[0]].attn.proj.weight, slice(head[1] * size, (head[1] + 1) * size)


@torch.no_grad()
def _zero_heads(model: GPT, heads: list[Head]) -> list[tuple[torch.Tensor, slice, torch.Tensor]]:
    """Zero ``heads``' columns of their output projections, in place; what was there, to put back."""
    saved = []
    for head in heads:
        weight, columns = _columns(model, head)
        saved.append((weight, columns, weight[:, columns].clone()))
        weight[:, columns] = 0
    return saved


@contextmanager
def knocked_out(model: GPT, heads: list[Head]):
    """Within the block, ``heads`` write nothing into the residual stream: their outputs are zero
    before the output projection, which is the same as zeroing their columns of ``attn.proj.weight``
    (done here, in place, and undone on exit). Every way of running the model sees it, the fast
    decoder included. In place, so not for a model that other threads use meanwhile: ``ablated``
    gives a copy for that."""
    saved = _zero_heads(model, heads)
    try:
        yield model
    finally:
        with torch.no_grad():
            for weight, columns, values in reversed(saved):
                weight[:, columns] = values


def ablated(model: GPT, heads: list[Head]) -> GPT:
    """A copy of ``model`` with ``heads`` knocked out for good (the original stays as it is)."""
    copy = deepcopy(model)
    _zero_heads(copy, heads)
    return copy


# ---- what the forward pass holds ----------------------------------------------------------------
@dataclass
class Internals:
    embedding: torch.Tensor  # (B, T, C): token + position embeddings, the residual stream's start
    residual: list[torch.Tensor]  # per block, (B, T, C): the stream after it
    heads_out: list[torch.Tensor]  # per block, (B, T, C): the heads' outputs side by side, before the projection
    mlp_out: list[torch.Tensor]  # per block, (B, T, C): what its MLP added
    attentions: list[torch.Tensor]  # per block, (B, n_head, T, T)
    logits: torch.Tensor  # (B, T, vocab)


@torch.no_grad()
def internals(model: GPT, idx: torch.Tensor) -> Internals:
    """One forward pass over ``idx`` (B, T) in eval mode, keeping what each part of it produced.
    The hooks keep only this thread's pass: a server's other threads may run the same model meanwhile."""
    kept: dict[str, list] = {"embedding": [], "residual": [], "heads_out": [], "mlp_out": []}
    me = threading.get_ident()

    def keep(name, pick):
        return lambda *hook_args: kept[name].append(pick(hook_args)) if threading.get_ident() == me else None

    hooks = [model.dropout.register_forward_hook(keep("embedding", lambda a: a[2]))]
    for block in model.blocks:
        hooks += [block.register_forward_hook(keep("residual", lambda a: a[2][0])),
                  block.attn.proj.register_forward_pre_hook(keep("heads_out", lambda a: a[1][0])),
                  block.mlp.register_forward_hook(keep("mlp_out", lambda a: a[2]))]
    was_training = model.training
    model.eval()
    try:
        out = model(idx, return_attention=True)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return Internals(kept["embedding"][0], kept["residual"], kept["heads_out"], kept["mlp_out"], out.attentions,
                     out.logits)


@torch.no_grad()
def lens(model: GPT, streams: torch.Tensor) -> torch.Tensor:
    """Residual streams (..., n_embd) read as the model reads its last one: the final LayerNorm,
    the output head, a softmax. Probabilities (..., vocab)."""
    return F.softmax(model.lm_head(model.ln_f(streams)).float(), dim=-1)


def logit_lens(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """What the model would write after each layer: the residual stream after block l (row l; row 0
    is the embedding alone) through the final LayerNorm and the output head, as probabilities,
    (n_layer + 1, B, T, vocab). The last row is the model's own output."""
    inside = internals(model, idx)
    return lens(model, torch.stack([inside.embedding, *inside.residual]))


@dataclass
class Attribution:
    """Direct logit attribution of one written character: what each part of the model adds to its
    logit straight through the final LayerNorm and the output head, with the LayerNorm's scale
    held at its value at that position (the approximation: the scale depends on everything, and is
    frozen here, so the parts add up exactly; the centring is linear and goes to each part)."""

    logit: float  # the character's logit, as the model computed it
    heads: torch.Tensor  # (n_layer, n_head): each head's direct push
    attn_bias: list[float]  # per block: its attention projection's bias
    mlps: list[float]  # per block: its MLP
    embedding: float  # the token and position embeddings
    constant: float  # the final LayerNorm's bias and the output head's bias

    def total(self) -> float:
        return float(self.heads.sum()) + sum(self.attn_bias) + sum(self.mlps) + self.embedding + self.constant


@torch.no_grad()
def _directions(model: GPT, finals: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """What one unit of residual stream adds to each token's logit (N, n_embd), with the final
    LayerNorm's scale frozen at its value for each stream of ``finals`` (N, n_embd): the output
    head's row, times that scale."""
    ln = model.ln_f
    scale = ln.weight.float() * torch.rsqrt(finals.float().var(-1, unbiased=False, keepdim=True) + ln.eps)
    return model.lm_head.weight[tokens].float() * scale


def _push(vector: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """A part's direct push on the logit: centred as LayerNorm centres, then along ``direction``."""
    return (vector - vector.mean(-1, keepdim=True)) @ direction


def projections(model: GPT) -> torch.Tensor:
    """Every block's output projection by input channel, (n_layer * n_head * head_size, n_embd) in
    fp32: row (layer, head, d) is what channel d of that head's output adds to the residual stream.
    Made once, for ``direct_pushes`` at every step of a generation."""
    return torch.cat([b.attn.proj.weight.detach().float().t() for b in model.blocks])


@torch.no_grad()
def direct_pushes(model: GPT, final: torch.Tensor, heads_out: torch.Tensor, token: int | torch.Tensor,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each head's direct push on ``token``'s logit: (n_layer, n_head) from the final residual stream
    ``final`` (n_embd,) and the blocks' heads' outputs ``heads_out`` (n_layer, n_embd) at one position;
    or (N, n_layer, n_head) from N positions at once (``final`` (N, n_embd), ``heads_out`` (N, n_layer,
    n_embd), ``token`` (N,)). ``weights``: ``projections(model)``, when already made.

    A head's output o through the projection W, centred as LayerNorm centres, along the direction d:
    (W o - mean(W o)) . d = o . W^T (d - mean(d)), so one product with the centred directions serves
    every head of every layer."""
    cfg = model.config
    single = final.dim() == 1
    finals, outputs = (final[None], heads_out[None]) if single else (final, heads_out)
    tokens = torch.as_tensor(token, device=finals.device).reshape(-1)
    weights = projections(model) if weights is None else weights
    directions = _directions(model, finals, tokens)
    directions = directions - directions.mean(-1, keepdim=True)
    per_channel = (directions @ weights.t()).view(-1, cfg.n_layer, cfg.n_head, cfg.head_size)
    pushes = (per_channel * outputs.float().view(-1, cfg.n_layer, cfg.n_head, cfg.head_size)).sum(-1)
    return pushes[0] if single else pushes


def head_attribution(model: GPT, idx: torch.Tensor, token: int, position: int = -1) -> Attribution:
    """``Attribution`` of ``token``'s logit at ``position`` of ``idx`` (1, T)."""
    inside = internals(model, idx)
    ln = model.ln_f
    with torch.no_grad():
        final = inside.residual[-1][0, position]
        direction = _directions(model, final[None], torch.tensor([token], device=final.device))[0]
        heads = direct_pushes(model, final, torch.stack([h[0, position] for h in inside.heads_out]), token)
        attn_bias = [float(_push(b.attn.proj.bias.float(), direction)) if b.attn.proj.bias is not None else 0.0
                     for b in model.blocks]
        mlps = [float(_push(m[0, position].float(), direction)) for m in inside.mlp_out]
        constant = float(ln.bias.float() @ model.lm_head.weight[token].float()) if ln.bias is not None else 0.0
        if model.lm_head.bias is not None:
            constant += float(model.lm_head.bias[token])
        return Attribution(float(inside.logits[0, position, token]), heads, attn_bias, mlps,
                           float(_push(inside.embedding[0, position].float(), direction)), constant)


# ---- head roles --------------------------------------------------------------------------------
ROLES = {  # name: what a score of 1 means (each score is in [0, 1])
    "prev char": "all its attention on the character just before",
    "self": "all its attention on the character it is reading",
    "word start": "all on the first letter of the current word (from the word's third letter on)",
    "induction": "all on the character after the last earlier occurrence of the current one (copying)",
    "line start": "all on the first character of the current line",
    "punctuation": "all on the last punctuation mark before",
    "spread": "attention spread evenly over everything it may see (entropy over its maximum)",
}


def strongest_role(scores: dict[str, float]) -> tuple[str, float]:
    """A head's badge: its highest-scoring pattern; "spread" instead when no pattern reaches 0.3 and
    the head's attention is spread out (0.5 or more)."""
    patterns = {r: v for r, v in scores.items() if r != "spread" and not math.isnan(v)}
    role = max(patterns, key=patterns.get) if patterns else "spread"
    if not patterns or (patterns[role] < 0.3 and scores.get("spread", 0.0) >= 0.5):
        role = "spread"
    return role, scores.get(role, 0.0)


def role_targets(chars: list[str]) -> dict[str, list[int | None]]:
    """For each role and each position i, the position that role attends to (None: not defined at i).
    Targets at i or i - 1 count for "self" and "prev char" only, so a head that does one of those
    scores ~0 on the others."""
    n = len(chars)
    targets: dict[str, list[int | None]] = {role: [None] * n for role in ROLES if role != "spread"}
    word, line, punct, last_seen = 0, 0, None, {}
    for i, c in enumerate(chars):
        if i and chars[i - 1].isspace():
            word = i
        if i and chars[i - 1] == "\n":
            line = i
        targets["prev char"][i] = i - 1 if i else None
        targets["self"][i] = i
        earlier = last_seen.get(c)
        for role, t in (("word start", word if not c.isspace() else None), ("line start", line),
                        ("punctuation", punct), ("induction", earlier + 1 if earlier is not None else None)):
            targets[role][i] = t if t is not None and t < i - 1 else None
        last_seen[c] = i
        if c in PUNCTUATION:
            punct = i
    return targets


def role_scores(attention: torch.Tensor, chars: list[str]) -> dict[Head, dict[str, float]]:
    """Scores of every head from its attention ``attention`` (n_layer, n_head, T, T) over ``chars``."""
    targets = role_targets(chars)
    T = attention.size(-1)
    rows = torch.arange(T)
    # spread: each row's entropy over the entropy of an even spread over the i + 1 keys it may see
    probs = attention.float().clamp_min(1e-12)
    entropy = -(attention.float() * probs.log()).sum(-1)[..., 1:]  # (L, H, T - 1): row 0 sees one key
    spread = (entropy / torch.log(rows[1:].float() + 1)).mean(-1)
    scores: dict[Head, dict[str, float]] = {}
    layers, heads = attention.shape[:2]
    per_role = {}
    for role, where in targets.items():
        picked = [(i, t) for i, t in enumerate(where) if t is not None]
        if not picked:
            per_role[role] = torch.full((layers, heads), float("nan"))
            continue
        i, t = torch.tensor(picked).T
        per_role[role] = attention[..., i, t].float().mean(-1)
    for layer in range(layers):
        for head in range(heads):
            scores[(layer, head)] = {role: round(float(per_role[role][layer, head]), 4) for role in per_role}
            scores[(layer, head)]["spread"] = round(float(spread[layer, head]), 4)
    return scores


def head_roles(model: GPT, tokenizer: CharTokenizer, text: str) -> dict[tuple[int, int], dict[str, float]]:
    """Every head scored on ``text`` for each of ``ROLES``, keys 1-based as printed: ``{(2, 3): {"prev
    char": 0.93, ...}}``. The text is read in windows of the model's block_size (each window's
    scores weighted by its length); characters the model does not know are left out."""
    ids = tokenizer.encode_prompt(text, max_chars=len(text) + 1).ids
    if len(ids) < 3:
        raise ConfigError("head_roles needs a text of at least 3 characters the model knows")
    block = model.config.block_size
    totals: dict[Head, dict[str, list[float]]] = {}  # per head and role: [sum of score x length, length]
    for start in range(0, len(ids), block):
        window = ids[start:start + block]
        if len(window) < 3:
            break
        attention = torch.stack(internals(model, torch.tensor([window], device=model.device)).attentions)[:, 0]
        for head, roles in role_scores(attention.cpu(), [tokenizer.chars[i] for i in window]).items():
            for role, score in roles.items():
                if not math.isnan(score):
                    total = totals.setdefault(head, {}).setdefault(role, [0.0, 0])
                    total[0] += score * len(window)
                    total[1] += len(window)
    return {(layer + 1, h + 1): {role: round(weighted / n, 3) for role, (weighted, n) in roles.items()}
            for (layer, h), roles in totals.items()}


# ---- the model's own text and a loss on it --------------------------------------------------
def own_text(model: GPT, tokenizer: CharTokenizer, chars: int = 2000, seed: int = 0) -> list[int]:
    """A fixed sample of the model's own writing: a newline (or its first character), then ``chars``
    characters, temperature 1, seeded. Nothing of the books it read is needed or kept.

    It is written as passages of one window each, every one from the newline, side by side in one
    batch, then joined: a step reads the weights once for all its rows, so four rows cost a CPU little
    more than one, and the page's 1,000 characters take a third of the time. ``head_roles`` reads a
    text in windows of block_size, which are then exactly these passages."""
    start = tokenizer.stoi.get("\n", 0)
    block = model.config.block_size
    passages = -(-(chars + 1) // block)  # enough windows for chars + 1 ids
    prompt = torch.full((passages, 1), start, dtype=torch.long, device=model.device)
    generator = torch.Generator(model.device).manual_seed(seed)
    written = [s.token for s in stream(model, prompt, min(chars, block - 1), generator=generator)]
    rows = torch.cat([prompt, torch.stack(written, 1)], 1) if written else prompt
    return rows.flatten().tolist()[:chars + 1]


@torch.no_grad()
def loss_on(model: GPT, ids: list[int], scored_from: int = 1) -> float:
    """Mean cross-entropy (nats a character) of ``ids`` read in windows of block_size that overlap by
    half, each character scored once with at least half a window of context (but at the start).
    Only the characters from index ``scored_from`` on are scored (a prompt's are read, not scored)."""
    block, half = model.config.block_size, max(1, model.config.block_size // 2)
    data = torch.tensor(ids, device=model.device)
    total, count, start = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        while True:
            window = data[start:start + block + 1]
            if window.numel() < 2:
                break
            logits = model(window[None, :-1]).logits[0].float()
            first = 0 if start == 0 else half  # before that, the previous window scored them
            first = max(first, scored_from - 1 - start)  # the target of logit j is ids[start + 1 + j]
            if first < window.numel() - 1:
                losses = F.cross_entropy(logits[first:], window[1 + first:], reduction="sum")
                total, count = total + float(losses), count + window.numel() - 1 - first
            if start + block + 1 >= data.numel():
                break
            start += block - half
    finally:
        model.train(was_training)
    return total / max(count, 1)
