"""The step stream: what the server sends the page while the model writes, one small message per
step, so the browser draws everything itself and nothing already sent is sent again.

``StepStream`` is the one place these messages are made; ``static/live/protocol.js`` is the one
place the page reads them (tests/test_protocol.py checks that the two agree). Each update of a
run is a list: the run's start message, then the steps new since the last update (Gradio sends
an update as edits of the one before, so the unchanged start costs nothing):

    {"kind": "start", "run", "layers", "heads", "prompt", "branch", "keep", "notes"}
    {"i": step, "t": char, "p": prob, "c": [[char, prob], ...], "r": [[position, first_key, "base64"], ...]}
    ...
When the run ends, one small object follows:
    {"kind": "end", "run", "steps", "notes", "stopped"}
and a run that cannot go on sends {"kind": "error", "message"} instead. Sending only new steps
keeps each update's cost flat; a growing list made the server and the browser slower with every
step (75 characters/s shown after 1,500).

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

QUANT_LEVELS = 255  # q = round(QUANT_LEVELS * sqrt(w)): one byte a weight
START_KEYS = ("kind", "run", "layers", "heads", "prompt", "branch", "keep", "notes")
STEP_KEYS = ("i", "t", "p", "c", "r")  # step number (1-based), character, its probability, candidates, rows
END_KEYS = ("kind", "run", "steps", "notes", "stopped")
PROB_DIGITS = 5


def quantise(weights: np.ndarray) -> np.ndarray:
    return np.rint(QUANT_LEVELS * np.sqrt(np.clip(weights, 0.0, 1.0))).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) / QUANT_LEVELS) ** 2


def encode_row(row: AttentionRow) -> list:
    return [row.position, row.first_key, base64.b64encode(quantise(row.weights).tobytes()).decode("ascii")]


def decode_row(encoded: list, layers: int, heads: int) -> AttentionRow:
    position, first_key, data = encoded
    q = np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(layers, heads, position - first_key + 1)
    return AttentionRow(position, first_key, dequantise(q))


def error_message(message: str) -> dict:
    return {"kind": "error", "message": message}


def _dumps(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class StepStream:
    """The messages of one run, for a model of ``layers`` x ``heads``. ``branch``: the run continues
    the one on the page, whose first ``keep`` steps stay, then the forced character (the last of
    the transcript's prompt)."""

    def __init__(self, layers: int, heads: int, *, branch: bool = False, keep: int = 0, run: str | None = None):
        self.layers, self.heads, self.branch, self.keep = layers, heads, branch, keep
        self.run = run or uuid.uuid4().hex[:12]
        self._start: str | None = None

    def start(self, transcript: Transcript) -> str:
        """The start message, made at the first call and the same string after (the page tells runs apart by it)."""
        if self._start is None:
            self._start = _dumps(dict(zip(START_KEYS, ("start", self.run, self.layers, self.heads, transcript.prompt,
                                                       self.branch, self.keep, transcript.notes))))
        return self._start

    def step(self, event: StepEvent) -> str:
        s = event.step
        return _dumps(dict(zip(STEP_KEYS, (event.index, s.char, round(s.prob, PROB_DIGITS),
                                           [[c, round(p, PROB_DIGITS)] for c, p in s.candidates],
                                           [encode_row(r) for r in event.rows]))))

    def end(self, transcript: Transcript, stopped: bool = False) -> dict:
        return dict(zip(END_KEYS, ("end", self.run, len(transcript.steps), transcript.notes,
                                   stopped or transcript.timed_out)))
