"""Pictures for the app: per-head attention heatmaps, attention over the text, probability bars."""

from __future__ import annotations

import html
import io
import math

import numpy as np

from .demo import TOP_N, StepRecord, Transcript, show_char

HEAT_RGB = (190, 30, 45)  # the page's accent red


def heatmap_image(weights: np.ndarray, chars: str, layer: int) -> np.ndarray:
    """One heatmap per head, (heads, n, n) -> an RGB image; queries down, keys across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    n_head, n = weights.shape[0], weights.shape[1]
    cols = min(n_head, 3)
    rows = math.ceil(n_head / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows), dpi=90, squeeze=False)
    labels = [show_char(c) for c in chars]
    for h, ax in enumerate(axes.flat):
        if h >= n_head:
            ax.axis("off")
            continue
        # A square-root colour scale: weights spread over many characters stay visible.
        ax.imshow(weights[h] if n else np.zeros((1, 1)), cmap="magma", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0),
                  interpolation="nearest")
        ax.set_title(f"layer {layer + 1} · head {h + 1}", fontsize=10)
        ax.set_xticks(range(n), labels, fontsize=5, family="monospace")
        ax.set_yticks(range(n), labels, fontsize=5, family="monospace")
        ax.tick_params(length=0, pad=1)
    fig.supxlabel("attends to (earlier characters)", fontsize=9)
    fig.supylabel("character being read", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    from PIL import Image

    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def empty_heatmap() -> np.ndarray:
    return np.full((60, 300, 3), 250, dtype=np.uint8)


def probabilities(step: StepRecord | None) -> dict[str, float]:
    """For gr.Label: the candidates after temperature/top-k/top-p, the sampled one marked (and
    shown even when it was not among the likeliest: it then takes the last place)."""
    if step is None:
        return {}
    candidates = step.candidates
    if step.char not in [c for c, _ in candidates]:
        candidates = candidates[: TOP_N - 1] + [(step.char, step.chosen_prob)]
    return {show_char(c) + ("  ◀ sampled" if c == step.char else ""): round(p, 4) for c, p in candidates}


def highlighted_text(transcript: Transcript, upto_step: int) -> list[tuple[str, str | None]]:
    """For gr.HighlightedText: one entry per character, the generated ones labelled."""
    gen = "".join(s.char for s in transcript.steps[:upto_step])
    return [(c, None) for c in transcript.prompt] + [(c, "generated") for c in gen]


def attention_over_text(transcript: Transcript, position: int) -> str:
    """HTML: for the character at ``position``, each head's attention over the characters before it."""
    from .demo import WINDOW

    text = transcript.text
    if position not in transcript.rows:
        return "<p class='gpt40k-note'>Attention is kept for the last 64 characters only: pick a later one.</p>"
    rows = transcript.rows[position].astype(np.float32)  # (layers, heads, WINDOW)
    start = position - WINDOW + 1
    parts = [f"<p>What each head looked at while reading <b>{html.escape(show_char(text[position]))}</b> "
             f"(character {position + 1}):</p>"]
    for layer in range(rows.shape[0]):
        for head in range(rows.shape[1]):
            spans = []
            for k in range(max(0, start), position + 1):
                w = float(rows[layer, head, k - start])
                ch = html.escape(show_char(text[k]) if text[k] in "\n\t" else text[k])
                spans.append(f"<span title='{w:.3f}' style='background: rgba{(*HEAT_RGB, round(w, 3))}'>{ch}</span>")
            parts.append(f"<div class='gpt40k-head'><span class='gpt40k-head-label'>L{layer + 1} H{head + 1}</span>"
                         f"<span class='gpt40k-attn'>{''.join(spans)}</span></div>")
    return "\n".join(parts)
