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
