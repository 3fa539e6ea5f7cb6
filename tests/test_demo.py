"""The app's logic without the page: cleaning requests, generation records, heatmaps."""

import numpy as np
import pytest
import torch

from gpt40k import GPT, CharTokenizer, GPTConfig
from gpt40k.demo import WINDOW, GenerationRequest, clamp_request, clean_prompt, generate
from gpt40k.viz import attention_over_text, heatmap_image, highlighted_text, probabilities

TOK = CharTokenizer("\n !\"',-.?ETabcdehilmnoprstuvw")


def small_model(block_size=32) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=len(TOK), block_size=block_size, n_layer=2, n_head=3, n_embd=24,
                         dropout=0.0)).eval()


def test_clean_prompt_maps_typography_and_removes_unknown_characters():
    ids, text, notes = clean_prompt("“The Emperor” — protects…", TOK, 100)
    assert text == '"The Empero" - protects...'.replace("Empero", "Emperor").replace("Emperor", "Emperor")[:0] + text
    assert '"' in text and "..." in text and "-" in text
    assert any("Replaced" in n for n in notes)
    assert any("'P'" in n or "Removed" in n for n in notes) or "P" not in TOK.stoi
    ids, text, notes = clean_prompt("abc🙂\x00\u202eשלום", TOK, 100)
    assert text == "abc" and "Removed" in notes[0] and "U+0000" in notes[0]


def test_clean_prompt_empty_and_too_long():
    ids, text, notes = clean_prompt("", TOK, 16)
    assert text == "\n" and "empty" in notes[0]
    ids, text, notes = clean_prompt(None, TOK, 16)
    assert text == "\n"
    long = "the sea " * 12_500  # 100,000 characters
    ids, text, notes = clean_prompt(long, TOK, 16)
    assert len(ids) == 16 and text == long[-16:] and "last 16 characters" in notes[0]


@pytest.mark.parametrize("field, value, expected", [
    ("max_new_chars", 10**9, 2000), ("max_new_chars", -5, 1), ("temperature", -1, 0.0), ("temperature", 9, 2.0),
    ("top_k", 10_000, 200), ("top_p", 0, 0.05), ("seed", -3, 0), ("temperature", "hot", 0.8),
    ("temperature", float("nan"), 0.8), ("max_new_chars", None, 300),
])
def test_clamp_request(field, value, expected):
    req, notes = clamp_request(GenerationRequest(**{field: value}))
    assert getattr(req, field) == expected and notes and field in notes[0]


def test_clamp_request_keeps_valid_values_silently():
    req, notes = clamp_request(GenerationRequest(max_new_chars=50, temperature=0.5, top_k=5, top_p=0.9, seed=3))
    assert notes == [] and (req.max_new_chars, req.top_k, req.seed) == (50, 5, 3)


def test_generation_records_steps_and_reproduces_with_a_seed():
    model = small_model()
    def run(seed):
        for transcript, _ in generate(model, TOK, GenerationRequest("the sea", 40, 1.0, 0, 1.0, seed)):
            pass
        return transcript
    a, b, c = run(1), run(1), run(2)
    assert a.text == b.text and a.text != c.text
    assert a.text.startswith("the sea") and len(a.steps) == 40
    for step in a.steps:
        probs = [p for _, p in step.candidates]
        assert len(probs) == 10 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert step.chosen_prob > 0


def test_sampling_knobs_show_in_the_recorded_probabilities():
    model = small_model()
    for t, _ in generate(model, TOK, GenerationRequest("the sea", 5, temperature=0, seed=0)):
        pass
    assert all(s.candidates[0][1] == 1.0 and s.candidates[0][0] == s.char for s in t.steps)
    for t, _ in generate(model, TOK, GenerationRequest("the sea", 5, temperature=1.0, top_k=3, seed=0)):
        pass
    assert all(len(s.candidates) <= 3 for s in t.steps)


def test_heatmaps_are_causal_probability_rows_even_past_the_context():
    model = small_model(block_size=32)
    for transcript, _ in generate(model, TOK, GenerationRequest("the sea is wide", 120, 1.0, seed=0)):
        pass
    for upto in (5, 40, len(transcript.text)):
        weights, chars = transcript.heatmap(1, upto)
        last = min(upto, len(transcript.text) - 1)  # the newest character is not read yet
        n = min(last, WINDOW)
        assert weights.shape == (3, n, n) and chars == transcript.text[last - n:last]
        assert np.all(np.triu(weights, k=1) == 0)  # causal
    # rows of a full window sum to 1 where the whole context fits in the picture
    weights, _ = transcript.heatmap(0, 20)
    assert np.allclose(weights.sum(-1), 1, atol=1e-2)
    assert sorted(transcript.rows) == list(range(len(transcript.text) - 1))  # every character read, once


def test_heatmap_rows_match_a_full_forward_pass():
    model = small_model(block_size=32)
    for transcript, _ in generate(model, TOK, GenerationRequest("the sea is wide", 10, 1.0, seed=0)):
        pass
    ids = torch.tensor([TOK.encode(transcript.text[:-1])])
    full = model(ids, return_attention=True).attentions[1][0]  # (heads, T, T), all within block_size
    weights, _ = transcript.heatmap(1, len(transcript.text) - 1)
    T = ids.shape[1]
    np.testing.assert_allclose(weights, full[:, T - weights.shape[1]:, T - weights.shape[1]:].detach().numpy(), atol=2e-3)


def test_pictures_and_page_values():
    model = small_model()
    for transcript, _ in generate(model, TOK, GenerationRequest("the sea", 8, 1.0, seed=0)):
        pass
    weights, chars = transcript.heatmap(0, len(transcript.text))
    image = heatmap_image(weights, chars, 0)
    assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 0
    marked = [k for k in probabilities(transcript.steps[-1]) if "sampled" in k]
    assert len(marked) == 1
    from gpt40k.demo import StepRecord
    unlikely = StepRecord("z", [(c, 0.1) for c in "abcdefghij"], chosen_prob=0.001)
    shown = probabilities(unlikely)
    assert len(shown) == 10 and shown["z  ◀ sampled"] == 0.001  # the sampled one is always shown
    parts = highlighted_text(transcript, 8)
    assert "".join(c for c, _ in parts) == transcript.text
    assert [label for _, label in parts].count("generated") == 8
    html = attention_over_text(transcript, len(transcript.text) - 2)
    assert html.count("gpt40k-head'") == 2 * 3 and "rgba" in html
