"""What the app does, without the web page: clean a request, generate step by step, and keep
what each step saw (probabilities, attention) so the page can replay any step.

Everything here is plain Python and tensors, so it is tested without a browser.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np
import torch

from .generation import stream
from .model import GPT
from .tokenizer import CharTokenizer

WINDOW = 64  # characters shown on each axis of the attention heatmaps
TOP_N = 10  # candidates shown in the probability chart
# Typographic characters and the plain ones they become when the vocabulary lacks them.
TYPOGRAPHIC = {"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'", "—": "-",
               "–": "-", "‐": "-", "…": "...", "\u00a0": " ", "\t": " ", "\r\n": "\n", "\r": "\n"}
LIMITS = {"max_new_chars": (1, 2000), "temperature": (0.0, 2.0), "top_k": (0, 200), "top_p": (0.05, 1.0),
          "seed": (0, 2**31 - 1), "chars_per_second": (0, 200)}


@dataclass
class GenerationRequest:
    prompt: str = "\n"
    max_new_chars: int = 300
    temperature: float = 0.8
    top_k: int = 0  # 0 = no limit
    top_p: float = 1.0
    seed: int = 0
    chars_per_second: float = 0  # 0 = as fast as possible


def show_char(c: str) -> str:
    """A visible stand-in for characters a heatmap label or chart cannot show as they are."""
    return {"\n": "⏎", " ": "␣", "\t": "⇥"}.get(c, c)


def clean_prompt(text: str | None, tok: CharTokenizer, block_size: int) -> tuple[list[int], str, list[str]]:
    """Token ids for ``text``, the text they spell, and notes on every change made to it."""
    notes: list[str] = []
    text = "" if text is None else str(text)
    text = unicodedata.normalize("NFC", text)
    mapped = {}
    for src, dst in TYPOGRAPHIC.items():
        if src in text and src not in tok.stoi and all(c in tok.stoi for c in dst):
            text = text.replace(src, dst)
            if src not in ("\r\n", "\r"):
                mapped[src] = dst
    if mapped:
        notes.append("Replaced " + ", ".join(f"{s!r} with {d!r}" for s, d in mapped.items())
                     + " (the model knows only the plain forms).")
    result = tok.encode_array(text, unknown="drop")
    if result.unknown:
        shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in result.unknown[:20])
        more = f" and {len(result.unknown) - 20} more" if len(result.unknown) > 20 else ""
        notes.append(f"Removed {len(result.unknown)} character(s) the model does not know: {shown}{more}.")
    ids = result.ids.tolist()
    if len(ids) > block_size:
        notes.append(f"The prompt is longer than the model's context of {block_size} characters: "
                     f"only its last {block_size} characters are used.")
        ids = ids[-block_size:]
    if not ids:
        notes.append("The prompt is empty (after cleaning): starting from a new line.")
        ids = tok.encode("\n", unknown="replace")
    return ids, tok.decode(ids), notes


def clamp_request(req: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
    """Numbers brought into range (and to the right type), with a note for each change."""
    notes = []
    values = {}
    for name, (lo, hi) in LIMITS.items():
        raw = getattr(req, name)
        try:
            value = float(raw)
            if not np.isfinite(value):
                raise ValueError
        except (TypeError, ValueError):
            value = float(getattr(GenerationRequest, name))
            notes.append(f"{name} {raw!r} is not a number: using {value:g}.")
        if value < lo or value > hi:
            clamped = min(max(value, lo), hi)
            notes.append(f"{name} {value:g} is out of range [{lo:g}, {hi:g}]: using {clamped:g}.")
            value = clamped
        values[name] = int(round(value)) if name in ("max_new_chars", "top_k", "seed") else value
    return GenerationRequest(prompt=req.prompt, **values), notes


@dataclass
class StepRecord:
    """What the model saw and chose when it wrote one character."""

    char: str
    candidates: list[tuple[str, float]]  # the TOP_N likeliest characters after the knobs
    chosen_prob: float


@dataclass
class Transcript:
    """The prompt, each generated step, and per-position attention rows for the heatmaps.

    ``rows[p]`` is, for the character at absolute position ``p``, an array (layers, heads, WINDOW)
    of how much each head attended to positions p-WINDOW+1 .. p when the model read it. Every
    position is kept so any step can be replayed: fp16, ~3 KB a character for the seed model,
    bounded because a request writes at most 2000 characters.
    """

    prompt: str
    n_layer: int
    n_head: int
    steps: list[StepRecord] = field(default_factory=list)
    rows: dict[int, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.prompt + "".join(s.char for s in self.steps)

    def store_rows(self, attentions: list[torch.Tensor], last_position: int, n_rows: int) -> None:
        """Keep the last ``n_rows`` query rows' last WINDOW weights; the last row is the character at
        ``last_position``. ``attentions``: per layer (1, heads, T, window), T >= n_rows.

        Only rows computed when a character was first read are kept: when the window jumps, the
        model recomputes earlier rows, but the page shows what it saw at the time."""
        stacked = torch.stack([a[0] for a in attentions]).float()  # (layers, heads, T, window)
        n_queries, window = stacked.shape[2], stacked.shape[3]
        for i in range(max(0, n_queries - min(n_rows, WINDOW)), n_queries):
            key_end = window - n_queries + i + 1  # the keys this query could see end here
            row = torch.zeros(self.n_layer, self.n_head, WINDOW)
            keys = stacked[:, :, i, max(0, key_end - WINDOW):key_end]
            row[:, :, WINDOW - keys.shape[-1]:] = keys
            self.rows[last_position - (n_queries - 1 - i)] = row.numpy().astype(np.float16)


    def heatmap(self, layer: int, upto: int) -> tuple[np.ndarray, str]:
        """(heads, n, n) attention among the last n <= WINDOW characters of text[:upto] the model has
        read (the newest character is written, not yet read), and those characters."""
        last = min(upto - 1, max(self.rows, default=-1))
        positions = [p for p in range(max(0, last - WINDOW + 1), last + 1) if p in self.rows]
        n = len(positions)
        out = np.zeros((self.n_head, n, n), dtype=np.float32)
        for i, p in enumerate(positions):
            row = self.rows[p][layer].astype(np.float32)  # (heads, WINDOW) for keys p-WINDOW+1..p
            for j, q in enumerate(positions[: i + 1]):
                out[:, i, j] = row[:, WINDOW - 1 - (p - q)]
        text = self.text
        return out, "".join(text[p] for p in positions)


def generate(model: GPT, tok: CharTokenizer, req: GenerationRequest):
    """Yield the Transcript after each new character (the same object, growing)."""
    req, notes = clamp_request(req)
    ids, prompt_text, prompt_notes = clean_prompt(req.prompt, tok, model.config.block_size)
    cfg = model.config
    transcript = Transcript(prompt_text, cfg.n_layer, cfg.n_head, notes=prompt_notes + notes)
    generator = torch.Generator(model.device).manual_seed(req.seed)  # per request: users never share one
    steps = stream(model, ids, req.max_new_chars, temperature=req.temperature, top_k=req.top_k or None,
                   top_p=req.top_p if req.top_p < 1 else None, generator=generator, return_attention=True)
    for i, step in enumerate(steps):
        # the first forward pass read the whole prompt; each later one read one new character
        transcript.store_rows(step.attentions, last_position=len(ids) - 1 + i, n_rows=len(ids) if i == 0 else 1)
        probs = step.probs[0]
        top = torch.topk(probs, min(TOP_N, probs.numel()))
        token = int(step.token[0])
        transcript.steps.append(StepRecord(
            char=tok.chars[token],
            candidates=[(tok.chars[int(i)], float(p)) for p, i in zip(top.values, top.indices) if p > 0],
            chosen_prob=float(probs[token])))
        yield transcript, req
