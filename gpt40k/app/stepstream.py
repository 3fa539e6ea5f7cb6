"""The step stream: what the server sends the page while the model writes, one small message per
step, so the browser draws everything itself and nothing already sent is sent again.

``StepStream`` is the one place these messages are made; ``static/live/protocol.js`` is the one
place the page reads them (tests/test_protocol.py checks that the two agree). Each update of a
run is a list: the run's start message, then the steps new since the last update (Gradio sends
an update as edits of the one before, so the unchanged start costs nothing):

    {"kind": "start", "run", "layers", "heads", "prompt", "branch", "keep", "notes", "roles", "knockout",
     "settings"}
    {"i": step, "t": char, "p": prob, "c": [[char, prob], ...], "r": [[position, first_key, "base64"], ...],
     "l": [[[char, prob], ...] per layer, the embedding first] | null, "a": [[push per head] per layer] | null}
    ...
When the run ends, one small object follows:
    {"kind": "end", "run", "steps", "notes", "stopped", "loss", "own"}

"roles" holds each head's strongest role on a reference text ([[name, score] per head, layer by
layer], or null), "knockout" the heads knocked out ("L2H3,L1H1", or ""), "l" the step's logit lens
and "a" each head's direct push on the written character's logit; "settings" the request as
written ({"model", "chars", "temperature", "top_k", "top_p", "seed"}: a link to the run holds them);
"loss" (a knock-out run: [nats/char before, after, characters]) or null; "own" (Compare: [nats/char of
the written text under the model that wrote it, characters]) or null.

``trace`` makes a whole run one object (TRACE_KEYS), as the page saves it (static/live/trace.js):
the page draws one before the first run.
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

from .transcript import AttentionRow, StepEvent, StepRecord, Transcript

QUANT_LEVELS = 255  # q = round(QUANT_LEVELS * sqrt(w)): one byte a weight
START_KEYS = ("kind", "run", "layers", "heads", "prompt", "branch", "keep", "notes", "roles", "knockout",
              "settings")
STEP_KEYS = ("i", "t", "p", "c", "r", "l", "a")  # step (1-based), char, prob, candidates, rows, lens, pushes
END_KEYS = ("kind", "run", "steps", "notes", "stopped", "loss", "own")
TRACE_KEYS = ("format", "version", "run", "layers", "heads", "prompt", "settings", "notes", "roles", "knockout",
              "loss", "own", "lineage", "steps", "rows")
TRACE_FORMAT, TRACE_VERSION = "gpt40k-trace", 1
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


def _step_fields(s: StepRecord) -> dict:
    """A step's character, probability, candidates, lens and pushes, rounded as they travel."""
    lens = [[[c, round(p, 3)] for c, p in layer] for layer in s.lens] if s.lens is not None else None
    return {"t": s.char, "p": round(s.prob, PROB_DIGITS), "c": [[c, round(p, PROB_DIGITS)] for c, p in s.candidates],
            "l": lens, "a": s.pushes}


class StepStream:
    """The messages of one run, for a model of ``layers`` x ``heads``. ``branch``: the run continues
    the one on the page, whose first ``keep`` steps stay, then the forced character (the last of
    the transcript's prompt)."""

    def __init__(self, layers: int, heads: int, *, branch: bool = False, keep: int = 0, run: str | None = None,
                 roles: list | None = None, knockout: str = "", model: str = ""):
        self.layers, self.heads, self.branch, self.keep = layers, heads, branch, keep
        self.roles, self.knockout, self.model = roles, knockout, model
        self.run = run or uuid.uuid4().hex[:12]
        self._start: str | None = None

    def start(self, transcript: Transcript) -> str:
        """The start message, made at the first call and the same string after (the page tells runs apart by it)."""
        if self._start is None:
            self._start = _dumps(dict(zip(START_KEYS, ("start", self.run, self.layers, self.heads, transcript.prompt,
                                                       self.branch, self.keep, transcript.notes, self.roles,
                                                       self.knockout, self.settings(transcript)))))
        return self._start

    def settings(self, transcript: Transcript) -> dict | None:
        req = transcript.request
        if req is None:
            return None
        return {"model": self.model, "chars": req.max_new_chars, "temperature": req.temperature, "top_k": req.top_k,
                "top_p": req.top_p, "seed": req.seed}

    def step(self, event: StepEvent) -> str:
        s = _step_fields(event.step)
        return _dumps(dict(zip(STEP_KEYS, (event.index, s["t"], s["p"], s["c"], [encode_row(r) for r in event.rows],
                                           s["l"], s["a"]))))

    def end(self, transcript: Transcript, stopped: bool = False, loss: list | None = None,
            own: list | None = None) -> dict:
        return dict(zip(END_KEYS, ("end", self.run, len(transcript.steps), transcript.notes,
                                   stopped or transcript.timed_out, loss, own)))

    def trace(self, transcript: Transcript, loss: list | None = None, own: list | None = None) -> dict:
        """The whole (plain, ended) run as one object: what the page's "Save run" writes."""
        steps = [_step_fields(s) for s in transcript.steps]
        values = {"format": TRACE_FORMAT, "version": TRACE_VERSION, "run": self.run, "layers": self.layers,
                  "heads": self.heads, "prompt": transcript.prompt, "settings": self.settings(transcript),
                  "notes": transcript.notes, "roles": self.roles, "knockout": self.knockout, "loss": loss, "own": own,
                  "lineage": {"knock": self.knockout, "forces": []}, "steps": steps,
                  "rows": [encode_row(transcript.rows[p]) for p in sorted(transcript.rows)]}
        return {key: values[key] for key in TRACE_KEYS}
