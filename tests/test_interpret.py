"""gpt40k.interpret: the logit lens, knocking heads out, head roles, direct logit attribution."""

import math

import pytest
import torch

from gpt40k import GPT, CharTokenizer, GPTConfig
from gpt40k.errors import ConfigError
from gpt40k.generate import stream
from gpt40k.interpret import (ROLES, ablated, all_heads_but, head_attribution, head_roles, knocked_out, logit_lens,
                              loss_on, own_text, parse_heads, role_scores)

TOK = CharTokenizer("\n !,.?abcdefghijklmnopqrstuvwxyz")


def model(**kw) -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(**{**dict(vocab_size=len(TOK), block_size=32, n_layer=3, n_head=4, n_embd=32, dropout=0.0),
                         **kw})).eval()
    with torch.no_grad():  # an untrained model's heads are all alike: give them some character
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m


def ids(text="the sea is wide, the sea is deep"):
    return torch.tensor([TOK.encode(text)])


def test_the_lens_last_row_is_the_models_output_and_rows_are_distributions():
    m = model()
    lens = logit_lens(m, ids())
    assert lens.shape == (4, 1, ids().size(1), len(TOK))
    torch.testing.assert_close(lens[-1], torch.softmax(m(ids()).logits, -1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(lens.sum(-1), torch.ones(lens.shape[:-1]))
    assert not torch.allclose(lens[0], lens[-1])  # the embedding alone predicts something else


def test_knocking_out_a_head_is_zeroing_its_columns_of_the_projection():
    m, heads = model(), [(1, 2)]
    twin = model()
    with torch.no_grad():
        twin.blocks[1].attn.proj.weight[:, 2 * 8:3 * 8] = 0  # head 3 of layer 2: channels 16-23
    before = m(ids()).logits
    with knocked_out(m, heads) as same:
        assert same is m
        torch.testing.assert_close(m(ids()).logits, twin(ids()).logits, atol=0, rtol=0)
        text = [s.token.item() for s in stream(m, [1, 2], 40, generator=torch.Generator().manual_seed(5))]
    twin_text = [s.token.item() for s in stream(twin, [1, 2], 40, generator=torch.Generator().manual_seed(5))]
    assert text == twin_text  # the fast decoder sees it too
    assert torch.equal(m(ids()).logits, before)  # undone on exit
    torch.testing.assert_close(ablated(m, heads)(ids()).logits, twin(ids()).logits, atol=0, rtol=0)
    assert torch.equal(m(ids()).logits, before)  # a copy: the model stays as it was
    with knocked_out(m, []):
        assert torch.equal(m(ids()).logits, before)  # no head knocked out: the original


def test_the_own_text_is_passages_of_one_window_each_that_head_roles_reads_as_its_windows():
    m = model(block_size=8)
    newline = TOK.stoi["\n"]
    text = own_text(m, TOK, chars=20)
    assert len(text) == 21 and own_text(m, TOK, chars=20) == text  # seeded: the same every time
    assert own_text(m, TOK, chars=20, seed=1) != text
    passages = [text[i:i + 8] for i in range(0, 21, 8)]  # 8, 8 and 5 ids: the windows head_roles reads
    assert [p[0] for p in passages] == [newline] * 3
    assert passages[0] != passages[1]  # drawn side by side, not copies
    assert len(own_text(m, TOK, chars=5)) == 6 and own_text(m, TOK, chars=0) == [newline]


def test_knocking_out_a_head_changes_the_text_and_the_loss():
    m = model()
    passage = own_text(m, TOK, chars=200)
    assert len(passage) == 201 and loss_on(m, passage) > 0
    plain = loss_on(m, passage)
    worse = loss_on(ablated(m, all_heads_but([(0, 0)], 3, 4)), passage)
    assert worse != plain and math.isfinite(worse)


def test_the_passage_loss_is_the_mean_cross_entropy_with_overlapping_windows():
    m = model(block_size=8)
    passage = list(range(20))
    with torch.no_grad():
        logits = m(torch.tensor([passage[:8]])).logits[0]
    first = torch.nn.functional.cross_entropy(logits, torch.tensor(passage[1:9]),
                                              reduction="sum")
    assert loss_on(m, passage[:9]) == pytest.approx(float(first) / 8, rel=1e-5)
    assert math.isfinite(loss_on(m, passage))
    # a prompt's characters are read, not scored: only the targets from index 5 on count
    tail = torch.nn.functional.cross_entropy(logits[4:], torch.tensor(passage[5:9]), reduction="sum")
    assert loss_on(m, passage[:9], scored_from=5) == pytest.approx(float(tail) / 4, rel=1e-5)
    whole = loss_on(m, passage)
    assert loss_on(m, passage, scored_from=1) == whole and math.isfinite(loss_on(m, passage, scored_from=15))


@pytest.mark.parametrize("spec, message", [("L9H1", "layers 1-3 and heads 1-4"), ("L1H5", "layers 1-3 and heads 1-4"),
                                           ("foo", "not a head"), ("L0H1", "layers 1-3"), ("L1", "not a head")])
def test_bad_head_specs_name_the_valid_range(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_heads(spec, 3, 4)


def test_head_specs_are_one_based_as_on_the_page():
    assert parse_heads("L2H3, l1h1,L2H3", 3, 4) == [(1, 2), (0, 0)]
    assert parse_heads("", 3, 4) == [] and parse_heads(None, 3, 4) == []
    assert len(all_heads_but([(0, 0)], 3, 4)) == 11


def one_hot_attention(chars: list[str], target) -> torch.Tensor:
    """(1, 1, T, T): each row all on target(i) (its own position where target gives None)."""
    T = len(chars)
    a = torch.zeros(1, 1, T, T)
    for i in range(T):
        t = target(i)
        a[0, 0, i, i if t is None else t] = 1.0
    return a


def test_a_head_on_the_previous_character_scores_one_there_and_about_zero_elsewhere():
    chars = list("the sea is wide,\nthe sea is deep. the end")
    scores = role_scores(one_hot_attention(chars, lambda i: i - 1 if i else None), chars)[(0, 0)]
    assert scores["prev char"] == 1.0
    assert all(scores[r] < 0.05 for r in ROLES if r not in ("prev char",)), scores


def test_each_role_is_found_on_a_head_built_for_it():
    from gpt40k.interpret import role_targets

    chars = list("the sea is wide,\nthe sea is deep. the end")
    targets = role_targets(chars)
    for role in ("word start", "line start", "punctuation", "induction", "self"):
        scores = role_scores(one_hot_attention(chars, lambda i: targets[role][i]), chars)[(0, 0)]
        assert scores[role] == 1.0, (role, scores)
    even = torch.tril(torch.ones(len(chars), len(chars)))
    even = (even / even.sum(-1, keepdim=True))[None, None]
    assert role_scores(even, chars)[(0, 0)]["spread"] == pytest.approx(1.0, abs=1e-4)
    assert role_scores(one_hot_attention(chars, lambda i: None), chars)[(0, 0)]["spread"] == pytest.approx(0, abs=1e-4)


def test_head_roles_of_a_model_cover_every_head_with_scores_in_0_1():
    roles = head_roles(model(), TOK, "the sea is wide, the sea is deep.\n" * 3)
    assert set(roles) == {(layer, h) for layer in range(1, 4) for h in range(1, 5)}
    assert all(set(r) == set(ROLES) and all(0 <= v <= 1 for v in r.values()) for r in roles.values())


def test_heads_and_the_rest_add_up_to_the_logit():
    m = model()
    x = ids()
    token = int(m(x).logits[0, -1].argmax())
    parts = head_attribution(m, x, token)
    assert parts.heads.shape == (3, 4)
    assert parts.logit == pytest.approx(float(m(x).logits[0, -1, token].detach()), abs=1e-6)
    assert parts.total() == pytest.approx(parts.logit, abs=1e-4)
    middle = head_attribution(m, x, 3, position=5)  # any position and character
    assert middle.total() == pytest.approx(float(m(x).logits[0, 5, 3].detach()), abs=1e-4)


def test_the_sample_cli_knocks_heads_out(tmp_path, capsys):
    from gpt40k import sample

    m = model()
    m.save_pretrained(tmp_path / "m", tokenizer=TOK)
    args = [str(tmp_path / "m"), "--prompt", "the", "--chars", "30", "--seed", "2", "--temperature", "1"]
    assert sample.main(args) == 0
    plain = capsys.readouterr().out
    assert sample.main([*args, "--knock-out", "L1H1,L2H2"]) == 0
    knocked = capsys.readouterr()
    expected = [s.token.item() for s in stream(ablated(m, [(0, 0), (1, 1)]), TOK.encode("the"), 30,
                                                temperature=1.0, generator=torch.Generator().manual_seed(2))]
    assert knocked.out == "the" + TOK.decode(expected) + "\n" and knocked.out != plain
    assert "knocked out 2 of 12 heads: L1H1, L2H2" in knocked.err
    assert sample.main([*args, "--keep-only", "L1H1"]) == 0 and "11 of 12" in capsys.readouterr().err
    assert sample.main([*args, "--knock-out", "L9H1"]) == 1
    assert "layers 1-3 and heads 1-4" in capsys.readouterr().err


def test_the_decoders_internals_are_the_forward_pass_parts():
    """What a decoding step keeps (for the page's lens and attribution) is what the full forward
    pass computes at that position: the stream after each block and the heads' outputs."""
    from gpt40k.interpret import internals

    m = model()
    prompt = TOK.encode("the sea is")
    steps = list(stream(m, prompt, 6, temperature=0, return_internals=True))
    assert steps[0].internals is None  # the prompt's forward pass keeps none
    text = prompt + [s.token.item() for s in steps]
    for k, step in enumerate(steps[1:], start=1):
        position = len(prompt) + k - 1  # the character this step read
        full = internals(m, torch.tensor([text[:position + 1]]))
        for got, want in zip(step.internals.residual, [full.embedding, *full.residual]):
            torch.testing.assert_close(got[0], want[0, position], atol=1e-5, rtol=1e-5)
        for got, want in zip(step.internals.heads_out, full.heads_out):
            torch.testing.assert_close(got[0], want[0, position], atol=1e-5, rtol=1e-5)


def test_the_pages_steps_carry_the_lens_and_the_pushes():
    from gpt40k.app.request import GenerationRequest
    from gpt40k.app.transcript import LENS_N, generate
    from gpt40k.interpret import direct_pushes, internals

    m = model()
    events = [e for _, e in generate(m, TOK, GenerationRequest("the sea", 5, 1.0, seed=1), explain=True)]
    for k, event in enumerate(events):
        s = event.step
        assert len(s.lens) == 4 and all(len(row) == LENS_N for row in s.lens)
        # the output row of the lens is the model's own distribution (temperature 1, no top-k or top-p)
        assert [c for c, _ in s.lens[-1]] == [c for c, _ in s.candidates[:LENS_N]]
        ids = TOK.encode("the sea") + TOK.encode("".join(e.step.char for e in events[:k]))
        full = internals(m, torch.tensor([ids]))
        want = direct_pushes(m, full.residual[-1][0, -1], torch.stack([h[0, -1] for h in full.heads_out]),
                             TOK.stoi[s.char])
        assert torch.allclose(torch.tensor(s.pushes), want, atol=2e-3)
    plain = [e for _, e in generate(m, TOK, GenerationRequest("the sea", 5, 1.0, seed=1))]
    assert plain[0].step.lens is None and [e.step.char for e in plain] == [e.step.char for e in events]


def test_a_badge_names_the_strongest_pattern_or_a_spread_head():
    from gpt40k.interpret import strongest_role

    assert strongest_role({"prev char": 0.9, "self": 0.1, "spread": 0.2}) == ("prev char", 0.9)
    assert strongest_role({"prev char": 0.1, "self": 0.05, "spread": 0.8}) == ("spread", 0.8)
    assert strongest_role({"prev char": 0.2, "self": 0.05, "spread": 0.3}) == ("prev char", 0.2)  # focused, no pattern
