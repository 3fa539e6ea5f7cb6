"""What a visitor asks for, made safe: numbers clamped into range, each change explained by a
note that the page and the API show (prompts are cleaned by ``CharTokenizer.encode_prompt``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

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


# How the page names each number (its labels), and the unit a value is counted in.
NAMES = {"max_new_chars": ("Length", " characters"), "temperature": ("Temperature", ""), "top_k": ("Top-k", ""),
         "top_p": ("Top-p", ""), "seed": ("Seed", "")}


def _amount(name: str, value: float) -> str:
    """``value`` with its unit: "300 characters", "1 character", "0.8"."""
    unit = NAMES[name][1]
    return f"{value:g}{unit[:-1] if value == 1 and unit.endswith('s') else unit}"


def _out_of_range(name: str, lo: float, hi: float, value: float, using: float) -> str:
    if value < lo:
        rule = "must be 0 or more" if lo == 0 else f"must be at least {lo:g}"
    else:
        rule = f"can be at most {hi:g}"
    return f"{NAMES[name][0]} {rule}: using {_amount(name, using)}."


def clamp_request(req: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
    """Numbers brought into range (and to the right type), with a note for each change, in the
    page's words ("Length was empty: using 300 characters.")."""
    notes, values = [], {}
    for name, (lo, hi) in LIMITS.items():
        label = NAMES[name][0]
        raw = getattr(req, name)
        try:
            value = float(raw)
        except OverflowError:  # an integer too big for a float: as far out of range as it gets
            value = math.inf if raw > 0 else -math.inf
        except (TypeError, ValueError):
            value = math.nan
        if math.isnan(value):
            value = float(DEFAULTS[name])
            said = "was empty" if raw is None or (isinstance(raw, str) and not raw.strip()) else \
                f"{str(raw)[:40]!r} is not a number"
            notes.append(f"{label} {said}: using {_amount(name, value)}.")
        if not lo <= value <= hi:
            clamped = min(max(value, lo), hi)
            notes.append(_out_of_range(name, lo, hi, value, clamped))
            value = clamped
        if name == "temperature" and 0 < value < 1e-3:  # below this, softmax overflows: it is greedy anyway
            notes.append(f"Temperature {value:g} is below 0.001: writing greedily (temperature 0).")
            value = 0.0
        values[name] = int(round(value)) if name in INTEGER_FIELDS else value
    return replace(req, **values), notes


# What one request may cost, in attention weights computed and kept (float32): the prompt's pass
# computes (prompt x prompt) weights per head and layer, and every position read keeps a row of up
# to block_size weights per head and layer. The shipped model's longest request (256 + 2000
# positions, 6 heads, 4 layers, a 256 window) needs 14M; a hostile checkpoint (block 8192, 16
# heads) would need billions. Bounding the product, not each number alone, bounds memory.
ATTENTION_BUDGET = 16_000_000  # weights: 64 MB


def fit_to_budget(prompt_len: int, max_new: int, n_layer: int, n_head: int, block: int) -> tuple[int, int, list[str]]:
    """(prompt characters kept, new characters allowed, notes) so that one request's attention
    (positions x heads x layers x window) stays within ATTENTION_BUDGET."""
    per_position = n_layer * n_head  # weights per key, for one query
    keep, notes = prompt_len, []
    while keep > 1 and keep * keep * per_position > ATTENTION_BUDGET // 2:  # the prompt's own pass
        keep //= 2
    if keep < prompt_len:
        notes.append(f"This model attends with {n_head} heads in {n_layer} layers over {block} characters: "
                     f"only the prompt's last {keep} characters were read, so one request stays within memory.")
    window = min(block, keep + max_new)
    allowed = max(1, min(max_new, ATTENTION_BUDGET // max(1, per_position * window) - keep))
    if allowed < max_new:
        notes.append(f"This model's attention is large ({n_head} heads x {n_layer} layers x {window} positions): "
                     f"writing {allowed} characters rather than {max_new}, so one request stays within memory.")
    return keep, allowed, notes
