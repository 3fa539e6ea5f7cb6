"""What a visitor asks for, made safe: numbers clamped into range and prompts cleaned, each
change explained by a note that the page and the API show."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, fields, replace

from ..tokenizer import CharTokenizer

# Typographic characters and the plain ones they become when the vocabulary lacks them.
TYPOGRAPHIC = {"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'", "—": "-",
               "–": "-", "‐": "-", "…": "...", "\u00a0": " ", "\t": " ", "\r\n": "\n", "\r": "\n"}
MAX_PROMPT_CHARS = 100_000  # longer input is cut before any work: only the last block_size characters count
INTEGER_FIELDS = ("max_new_chars", "top_k", "seed")


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str = "\n"
    max_new_chars: int = 300
    temperature: float = 0.8
    top_k: int = 0  # 0 = no limit
    top_p: float = 1.0  # 1 = no limit
    seed: int = 0


LIMITS = {"max_new_chars": (1, 2000), "temperature": (0.0, 2.0), "top_k": (0, 200), "top_p": (0.05, 1.0),
          "seed": (0, 2**31 - 1)}
DEFAULTS = {f.name: f.default for f in fields(GenerationRequest)}


def clamp_request(req: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
    """Numbers brought into range (and to the right type), with a note for each change."""
    notes, values = [], {}
    for name, (lo, hi) in LIMITS.items():
        raw = getattr(req, name)
        try:
            value = float(raw)
        except OverflowError:  # an integer too big for a float: as far out of range as it gets
            value = math.inf if raw > 0 else -math.inf
        except (TypeError, ValueError):
            value = math.nan
        if math.isnan(value):
            value = float(DEFAULTS[name])
            notes.append(f"{name} {raw!r} is not a number: using {value:g}.")
        if not lo <= value <= hi:
            clamped = min(max(value, lo), hi)
            notes.append(f"{name} {value:g} is out of range [{lo:g}, {hi:g}]: using {clamped:g}.")
            value = clamped
        if name == "temperature" and 0 < value < 1e-3:  # below this, softmax overflows: it is greedy anyway
            notes.append(f"temperature {value:g} is below 0.001: using 0 (greedy).")
            value = 0.0
        values[name] = int(round(value)) if name in INTEGER_FIELDS else value
    return replace(req, **values), notes


def clean_text(text, tok: CharTokenizer) -> tuple[str, list[str]]:
    """``text`` in the model's vocabulary: typography mapped to plain forms, unknown characters
    removed; with a note for each kind of change."""
    notes: list[str] = []
    text = "" if text is None else str(text)
    if len(text) > MAX_PROMPT_CHARS:
        text = text[-MAX_PROMPT_CHARS:]
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
    return tok.decode(result.ids.tolist()), notes


def clean_prompt(text, tok: CharTokenizer, block_size: int) -> tuple[list[int], str, list[str]]:
    """Token ids for ``text`` (at most the last ``block_size``), the text they spell, and notes."""
    text, notes = clean_text(text, tok)
    ids = tok.encode(text)
    if len(ids) > block_size:
        notes.append(f"The prompt is longer than the model's context of {block_size} characters: "
                     f"only its last {block_size} characters are used.")
        ids = ids[-block_size:]
    if not ids:
        notes.append("The prompt is empty (after cleaning): starting from a new line.")
        ids = tok.encode("\n", unknown="replace")
    return ids, tok.decode(ids), notes
