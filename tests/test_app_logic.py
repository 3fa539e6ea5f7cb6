"""The app's logic without Gradio: requests, the transcript of a generation, the step stream."""

import json

import numpy as np
import pytest
import torch

from gpt40k import GPT, CharTokenizer, GPTConfig
from gpt40k.app.request import GenerationRequest, clamp_request
from gpt40k.app.stepstream import START_KEYS, StepStream, decode_row, dequantise, quantise
from gpt40k.app.transcript import TOP_N, generate

TOK = CharTokenizer("\n !\"',-.?ETabcdehilmnoprstuvw")


def small_model(block_size=32) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=len(TOK), block_size=block_size, n_layer=2, n_head=3, n_embd=24,
                         dropout=0.0)).eval()


def run(model, req, **kw):
    events = []
    for transcript, event in generate(model, TOK, req, **kw):
        events.append(event)
    return transcript, events


@pytest.mark.parametrize("field, value, expected", [
    ("max_new_chars", 10**9, 2000), ("max_new_chars", -5, 1), ("temperature", -1, 0.0), ("temperature", 9, 2.0),
    ("top_k", 10_000, 200), ("top_p", 0, 0.05), ("seed", -3, 0), ("temperature", "hot", 0.8),
    ("temperature", float("nan"), 0.8), ("max_new_chars", None, 300), ("temperature", 1e-45, 0.0),
    ("seed", 10**400, 2**31 - 1), ("max_new_chars", float("inf"), 2000),
])
def test_clamp_request_explains_every_change(field, value, expected):
    from gpt40k.app.request import NAMES

    req, notes = clamp_request(GenerationRequest(**{field: value}))
    assert getattr(req, field) == expected and notes and notes[0].startswith(NAMES[field][0])


@pytest.mark.parametrize("field, value, note", [
    ("max_new_chars", None, "Length was empty: using 300 characters."),
    ("max_new_chars", "", "Length was empty: using 300 characters."),
    ("max_new_chars", 5000, "Length can be at most 2000: using 2000 characters."),
    ("max_new_chars", 0, "Length must be at least 1: using 1 character."),
    ("seed", -5, "Seed must be 0 or more: using 0."),
    ("temperature", "hot", "Temperature 'hot' is not a number: using 0.8."),
    ("top_p", 0, "Top-p must be at least 0.05: using 0.05."),
    ("temperature", 1e-45, "Temperature 1e-45 is below 0.001: writing greedily (temperature 0)."),
])
def test_notes_are_in_a_visitors_words(field, value, note):
    """The page's labels and plain rules, never a field name or an interval in brackets."""
    assert clamp_request(GenerationRequest(**{field: value}))[1] == [note]


def test_clamp_request_keeps_valid_values_silently():
    req, notes = clamp_request(GenerationRequest(max_new_chars=50, temperature=0.5, top_k=5, top_p=0.9, seed=3))
    assert notes == [] and (req.max_new_chars, req.top_k, req.seed) == (50, 5, 3)


def test_generation_records_each_choice_and_reproduces_with_a_seed():
    model = small_model()
    a, events = run(model, GenerationRequest("the sea", 40, 1.0, 0, 1.0, 1))
    b, _ = run(model, GenerationRequest("the sea", 40, 1.0, 0, 1.0, 1))
    c, _ = run(model, GenerationRequest("the sea", 40, 1.0, 0, 1.0, 2))
    assert a.text == b.text and a.text != c.text
    assert a.text.startswith("the sea") and len(a.steps) == 40 and [e.index for e in events] == list(range(1, 41))
    for step in a.steps:
        probs = [p for _, p in step.candidates]
        assert len(probs) == TOP_N and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert 0 < step.prob <= 1 and (step.char not in dict(step.candidates) or dict(step.candidates)[step.char]
                                       == pytest.approx(step.prob))


def test_sampling_knobs_show_in_the_recorded_choices():
    model = small_model()
    greedy, _ = run(model, GenerationRequest("the sea", 5, temperature=0, seed=0))
    assert all(s.candidates[0] == (s.char, 1.0) for s in greedy.steps)
    top3, _ = run(model, GenerationRequest("the sea", 5, temperature=1.0, top_k=3, seed=0))
    assert all(len(s.candidates) <= 3 for s in top3.steps)


def test_attention_rows_arrive_one_step_after_their_character_and_match_a_full_pass():
    model = small_model(block_size=32)
    transcript, events = run(model, GenerationRequest("the sea is wide", 10, 1.0, seed=0))
    assert [r.position for r in events[0].rows] == list(range(15))  # step 1: the whole prompt was read
    assert all([r.position for r in e.rows] == [14 + e.index - 1] for e in events[1:])
    ids = torch.tensor([TOK.encode(transcript.text[:-1])])  # everything read (the last character is not yet)
    full = torch.stack(model(ids, return_attention=True).attentions)[:, 0]  # (layers, heads, T, T)
    for position, row in transcript.rows.items():
        assert row.first_key == 0
        np.testing.assert_allclose(row.weights, full[:, :, position, : position + 1].detach().numpy(), atol=1e-5)


def test_rows_past_the_context_window_cover_the_window_and_sum_to_one():
    model = small_model(block_size=32)
    transcript, _ = run(model, GenerationRequest("the sea is wide", 100, 1.0, seed=0))
    assert sorted(transcript.rows) == list(range(len(transcript.text) - 1))  # every character read, once
    for p, row in transcript.rows.items():
        assert row.position == p and p - row.first_key + 1 == row.weights.shape[-1] <= 32
        np.testing.assert_allclose(row.weights.sum(-1), 1, atol=1e-4)


def test_a_branch_continues_the_text_with_the_forced_character():
    model = small_model()
    original, _ = run(model, GenerationRequest("the sea", 20, 1.0, seed=4))
    before = original.text[:7 + 5]  # the prompt and 5 written characters
    forced = "w" if original.text[12] != "w" else "v"
    branch, events = run(model, GenerationRequest("", 8, 1.0, seed=4), branch=(before, forced))
    assert branch.prompt == before + forced and len(branch.steps) == 8
    assert [r.position for r in events[0].rows] == [len(before)]  # only the forced character's row is new
    assert events[1].rows[0].position == len(before) + 1


def test_time_budget_ends_a_request_with_a_note():
    transcript, _ = run(small_model(), GenerationRequest("the sea", 2000, 1.0, seed=0), time_budget_s=0.0)
    assert transcript.timed_out and len(transcript.steps) == 1 and "Stopped after" in transcript.notes[-1]


def test_quantisation_keeps_weights_within_a_visible_error():
    w = np.random.default_rng(0).dirichlet(np.ones(200), size=50).astype(np.float32)
    back = dequantise(quantise(w))
    assert np.abs(back - w).max() < 0.008 and quantise(np.array([0.004]))[0] > 10  # small weights stay visible


def test_step_stream_messages_are_small_and_decode_back():
    model = small_model(block_size=32)
    transcript, events = run(model, GenerationRequest("the sea is wide", 30, 1.0, seed=0))
    messages = StepStream(2, 3)
    start = messages.start(transcript)
    header = json.loads(start)
    assert tuple(header) == START_KEYS and messages.start(transcript) is start  # made once, the same after
    assert header["kind"] == "start" and header["prompt"] == "the sea is wide" and not header["branch"]
    for event in events:
        message = json.loads(messages.step(event))
        assert message["i"] == event.index and message["t"] == event.step.char
        for encoded, row in zip(message["r"], event.rows):
            back = decode_row(encoded, 2, 3)
            assert back.position == row.position and np.abs(back.weights - row.weights).max() < 0.008
    # the seed model's row: 4 layers x 6 heads x 256 keys, one byte each, in base64: about 8 KB a step
    assert len(messages.step(events[-1])) < 2 * 3 * 32 * 4 / 3 + 600
    end = messages.end(transcript)
    assert end == {"kind": "end", "run": header["run"], "steps": 30, "notes": [], "stopped": False, "loss": None,
                   "own": None}
