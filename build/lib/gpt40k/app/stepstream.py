"""The step stream: what the server sends the page while the model writes, one small message per
step, so the browser draws everything itself and nothing already sent is sent again.

Each update of a run is a list: the run's start message, then the steps new since the last update
(Gradio sends an update as edits of the one before, so the unchanged start costs nothing):

    {"kind": "start", "run", "model", "layers", "heads", "block", "prompt", "branch", "keep", "notes", "request"}
    {"i": step, "t": char, "p": prob, "c": [[char, prob], ...], "r": [[position, first_key, "base64"], ...]}
    ...
When the run ends, one small object follows:
    {"kind": "end", "run", "steps", "notes", "stopped"}
Sending only new steps keeps each update's cost flat; a growing list made the server and the
browser slower with every step (75 characters/s shown after 1,500).

Attention weights are quantised to one byte each on a square-root scale, q = round(255 * sqrt(w)),
which keeps the small weights of diffuse heads visible (the page draws on the same scale);
the page decodes w = (q / 255) ** 2. A row of the seed model (4 layers x 6 heads x 256 keys) is
6 KB, 8 KB in base64.
"""

from __future__ import annotations

import base64
import json
import uuid

import numpy as np

from .transcript import AttentionRow, StepEvent, Transcript


def quantise(weights: np.ndarray) -> np.ndarray:
    return np.rint(255 * np.sqrt(np.clip(weights, 0.0, 1.0))).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) / 255) ** 2


def _dumps(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def encode_row(row: AttentionRow) -> list:
    return [row.position, row.first_key, base64.b64encode(quantise(row.weights).tobytes()).decode("ascii")]


def decode_row(encoded: list, layers: int, heads: int) -> AttentionRow:
    position, first_key, data = encoded
    q = np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(layers, heads, position - first_key + 1)
    return AttentionRow(position, first_key, dequantise(q))


def start_message(transcript: Transcript, *, model_name: str, layers: int, heads: int, block: int,
                  request: dict, branch: bool = False, keep: int = 0, run: str | None = None) -> str:
    """``branch``: the run continues the one on the page, whose first ``keep`` steps stay, then
    the forced character (the last of ``transcript.prompt``)."""
    return _dumps({"kind": "start", "run": run or uuid.uuid4().hex[:12], "model": model_name, "layers": layers,
                   "heads": heads, "block": block, "prompt": transcript.prompt, "branch": branch, "keep": keep,
                   "notes": transcript.notes, "request": request})


def step_message(event: StepEvent) -> str:
    s = event.step
    return _dumps({"i": event.index, "t": s.char, "p": round(s.prob, 5),
                   "c": [[c, round(p, 5)] for c, p in s.candidates], "r": [encode_row(r) for r in event.rows]})


def end_message(run_start: str, transcript: Transcript, stopped: bool = False) -> dict:
    run = json.loads(run_start)["run"]
    return {"kind": "end", "run": run, "steps": len(transcript.steps), "notes": transcript.notes,
            "stopped": stopped or transcript.timed_out}
