import pytest
import torch

from gpt40k import GPT, GPTConfig
from gpt40k.errors import GenerationError
from gpt40k.generate.sampling import SlidingWindow, draw, next_token_distribution, stream


def small(block_size=12) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=13, block_size=block_size, n_layer=2, n_head=2, n_embd=16, dropout=0.0)).eval()


@pytest.mark.parametrize("slide", [1, 3, 12])
def test_cached_logits_equal_full_recompute_below_and_beyond_block_size(slide):
    model = small(block_size=12)
    seq = torch.randint(0, 13, (2, 40))
    window = SlidingWindow(model, batch_size=2, slide=slide)
    out = window.feed(seq[:, :5], return_attention=True)
    torch.testing.assert_close(out.logits, model(seq[:, :5]).logits, atol=1e-5, rtol=0)
    for t in range(5, 40):  # 35 more tokens, well past block_size
        out = window.feed(seq[:, t:t + 1], return_attention=True)
        ctx = window.window
        assert ctx.size(1) <= 12
        assert torch.equal(ctx, seq[:, t + 1 - ctx.size(1):t + 1])  # the window is the most recent text
        full = model(ctx, return_attention=True)
        torch.testing.assert_close(out.logits[:, -1], full.logits[:, -1], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.attentions[0][:, :, -1], full.attentions[0][:, :, -1], atol=1e-5, rtol=0)
        if slide == 1 and t >= 11:
            assert ctx.size(1) == 12  # exactly the seed: always the last block_size characters
        assert ctx.size(1) >= min(t + 1, 12 - slide + 1)


def test_default_slide_keeps_more_than_half_the_window_and_jumps_once_per_slide():
    window = SlidingWindow(small(block_size=12), batch_size=1)
    assert window.slide == 6
    seq = torch.randint(0, 13, (1, 60))
    contexts = []
    for t in range(60):
        window.feed(seq[:, t:t + 1])
        contexts.append(window.window.size(1))
    assert contexts[11:] == [12, 7, 8, 9, 10, 11] * 8 + [12]  # full, then a jump to 12 - 6 + 1 = 7


def test_slide_1_reproduces_the_seeds_crop_and_recompute_generation():
    model = small(block_size=8)
    prompt = torch.randint(0, 13, (1, 3))
    cached = torch.cat([prompt, *(s.token[:, None] for s in stream(model, prompt, 30, temperature=0, slide=1))], 1)
    idx = prompt  # the lecture's loop: crop to block_size, full forward, argmax
    for _ in range(30):
        logits = model(idx[:, -8:]).logits[:, -1]
        idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, idx)


def test_prompt_longer_than_block_size_keeps_its_end():
    model = small(block_size=8)
    steps = list(stream(model, list(range(13)) * 2, 3, temperature=0))
    assert steps[0].window == 8
    expected = model(torch.tensor([(list(range(13)) * 2)[-8:]])).logits[:, -1]
    torch.testing.assert_close(steps[0].logits, expected, atol=1e-5, rtol=0)


def test_sampling_knobs():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    greedy = next_token_distribution(logits, temperature=0)
    assert greedy.tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]
    top2 = next_token_distribution(logits, top_k=2)
    assert (top2[0, 2:] == 0).all() and abs(top2.sum().item() - 1) < 1e-6
    p = torch.softmax(logits, -1)[0]
    nucleus = next_token_distribution(logits, top_p=float(p[0] + 0.01))  # just over the first token's mass
    assert (nucleus[0, :2] > 0).all() and (nucleus[0, 2:] == 0).all()
    only_first = next_token_distribution(logits, top_p=float(p[0] - 0.01))
    assert only_first[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    hot, cold = next_token_distribution(logits, temperature=2.0), next_token_distribution(logits, temperature=0.5)
    assert hot[0, 0] < p[0] < cold[0, 0]


def test_draw_makes_torch_multinomials_draws_and_follows_the_probabilities():
    probs = next_token_distribution(3 * torch.randn(4, 13, generator=torch.Generator().manual_seed(0)), top_k=5)
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(200):
        assert torch.equal(draw(probs, ours), torch.multinomial(probs, 1, generator=theirs).squeeze(1))
    freq = torch.bincount(draw(probs[:1].expand(20000, -1), ours), minlength=13) / 20000
    assert freq[probs[0] == 0].sum() == 0  # top_k's zeros are never drawn
    torch.testing.assert_close(freq, probs[0], atol=0.015, rtol=0)  # 4 standard deviations


def test_a_model_whose_weights_diverged_gets_a_clear_error():
    model = small()
    with torch.no_grad():
        model.lm_head.weight[3, 0] = float("nan")
    with pytest.raises(GenerationError, match="not finite numbers .* earlier checkpoint"):
        list(stream(model, [1, 2], 3))


@pytest.mark.parametrize("kw, message", [
    (dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(slide=0), "slide"), (dict(slide=99), "slide"),
])
def test_bad_sampling_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        list(stream(small(), [1, 2], 2, **kw))
    with pytest.raises(ValueError, match="empty"):
        list(stream(small(), [], 2))


def test_seeds_reproduce_and_generators_are_independent():
    model = small()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return [int(s.token) for s in stream(model, [1], 40, generator=g)]
    assert run(1) == run(1)
    assert run(1) != run(2)
    torch.manual_seed(123)  # the global RNG does not matter when a generator is given
    assert run(1) == run(1)


def test_stream_restores_training_mode_and_reports_probabilities():
    model = small().train()
    steps = list(stream(model, [1, 2, 3], 4, top_k=3, return_attention=True))
    assert model.training
    assert len(steps) == 4
    for s in steps:
        assert abs(s.probs.sum().item() - 1) < 1e-5 and (s.probs > 0).sum() <= 3
        assert s.probs[0, s.token[0]] > 0
        assert len(s.attentions) == 2
    assert steps[0].attentions[0].shape == (1, 2, 3, 3)  # the prompt's full map
    assert steps[1].attentions[0].shape == (1, 2, 1, 4)  # then one new row per character


def randomised(model: GPT) -> GPT:
    """Every parameter random, biases and norms included: the init's zero biases and unit norms would
    hide a mistake in how fast_decode lays them out."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def after_a_prompt(activation: str, bias: bool):
    """A random model (dropout set, eval mode), 12 tokens for 2 rows, and two caches holding the first 4."""
    torch.manual_seed(0)
    model = randomised(GPT(GPTConfig(vocab_size=13, block_size=12, n_layer=3, n_head=4, n_embd=32, dropout=0.1,
                                     activation=activation, bias=bias)))
    seq = torch.randint(0, 13, (2, 12))
    caches = model.new_cache(2), model.new_cache(2)
    for cache in caches:
        model(seq[:, :4], cache=cache)
    return model, seq, *caches


@pytest.mark.parametrize("activation, bias", [("gelu", True), ("relu", True), ("gelu", False)])
def test_fast_decoder_step_equals_the_models_forward_with_a_cache(activation, bias):
    """fast_decode is GPT.forward for one new position: the same numbers, attention included."""
    from gpt40k.generate.decoder import FastDecoder

    model, seq, slow, fast = after_a_prompt(activation, bias)
    decoder = FastDecoder(model)
    for t in range(4, 12):
        expected = model(seq[:, t:t + 1], cache=slow, return_attention=True)
        logits, attentions, _ = decoder.step(seq[:, t:t + 1], fast, return_attention=True)
        torch.testing.assert_close(logits, expected.logits, atol=1e-6, rtol=1e-6)
        for got, want in zip(attentions, expected.attentions):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
        assert fast.length == slow.length == t + 1
    with pytest.raises(ValueError, match="block_size"):
        decoder.step(seq[:, :1], fast)


@pytest.mark.parametrize("activation, bias", [("gelu", True), ("relu", False)])
def test_the_cuda_graph_step_equals_the_fast_decoder_step(activation, bias):
    """The GPU's recorded step (fixed shapes: the whole buffer, later keys masked), run unrecorded
    here: the same logits and attention rows as FastDecoder.step, up to the window's last position."""
    from gpt40k.generate.decoder import CudaGraphStep, FastDecoder

    model, seq, plain, fixed = after_a_prompt(activation, bias)
    decoder = FastDecoder(model)
    graph_step = CudaGraphStep(decoder, fixed)
    for t in range(4, 12):
        want_logits, want_attention, _ = decoder.step(seq[:, t:t + 1], plain, return_attention=True)
        logits, attention = graph_step.step(seq[:, t:t + 1], t, return_attention=t % 2 == 0)
        fixed.advance(1)
        torch.testing.assert_close(logits, want_logits, atol=1e-6, rtol=1e-6)
        if t % 2 == 0:
            assert [a.shape for a in attention] == [(2, 4, 1, t + 1)] * 3
            for got, want in zip(attention, want_attention):
                torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
        else:
            assert attention is None
    torch.testing.assert_close(fixed.keys, plain.keys, atol=1e-6, rtol=1e-6)


def test_a_cuda_graph_that_cannot_be_recorded_falls_back_to_launching_the_step(monkeypatch, caplog):
    from gpt40k.generate.decoder import CudaGraphStep, FastDecoder

    def no_graphs(self):
        raise RuntimeError("CUDA graphs are not supported here")

    model = small()
    cache = model.new_cache(1)
    model(torch.tensor([[1, 2]]), cache=cache)
    graph_step = CudaGraphStep(FastDecoder(model), cache)
    monkeypatch.setattr(CudaGraphStep, "_record_graph", no_graphs)
    with caplog.at_level("WARNING", logger="gpt40k.generate.decoder"):
        graph_step._record()
    assert graph_step.graph is False and "not supported here" in caplog.text
    logits, _ = graph_step.step(torch.tensor([[3]]), 2, return_attention=False)
    torch.testing.assert_close(logits, model(torch.tensor([[1, 2, 3]])).logits[:, -1:], atol=1e-6, rtol=1e-6)


def test_fast_decoder_fill_caches_what_the_models_forward_caches():
    """A window jump fills the cache without the last block's outputs; the keys and values are the
    forward's, after cached positions too, and the next step's logits follow."""
    from gpt40k.generate.decoder import FastDecoder

    torch.manual_seed(0)
    model = randomised(GPT(GPTConfig(vocab_size=13, block_size=12, n_layer=3, n_head=4, n_embd=32)))
    seq = torch.randint(0, 13, (2, 10))
    want, got = model.new_cache(2), model.new_cache(2)
    decoder = FastDecoder(model)
    for start, end in ((0, 6), (6, 9)):
        model(seq[:, start:end], cache=want)
        decoder.fill(seq[:, start:end], got)
    assert got.length == want.length == 9
    torch.testing.assert_close(got.keys[:, :, :, :9], want.keys[:, :, :, :9], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(got.values[:, :, :, :9], want.values[:, :, :, :9], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(decoder.step(seq[:, 9:], got)[0], model(seq[:, 9:], cache=want).logits,
                               atol=1e-6, rtol=1e-6)


def test_fast_decoder_leaves_the_models_weights_alone():
    """The decoder scales its own copies of the weights, never the model's."""
    from gpt40k.generate.decoder import FastDecoder

    torch.manual_seed(0)
    model = randomised(GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8)))
    before = {name: p.clone() for name, p in model.state_dict().items()}
    decoder = FastDecoder(model)
    cache = model.new_cache(1)
    decoder.step(torch.tensor([[1]]), cache)
    for name, p in model.state_dict().items():
        assert torch.equal(p, before[name]), name


def test_decode_steps_run_on_one_thread_and_give_the_count_back(monkeypatch):
    """A step is too small to share between threads; the caller's thread count is restored."""
    import gpt40k.generate.decoder as fd

    seen = []
    real_step = fd.FastDecoder.step
    monkeypatch.setattr(fd.FastDecoder, "step", lambda self, *a, **k: seen.append(torch.get_num_threads())
                        or real_step(self, *a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        list(stream(small(), [1, 2, 3], 5))
        assert seen == [1] * 4 and torch.get_num_threads() == 2  # the prompt, then 4 lean steps
    finally:
        torch.set_num_threads(before)


def test_a_servers_decoding_thread_keeps_one_thread_and_leaves_the_others_theirs():
    """In a thread other than the main one (a visitor's generation in the server), the step's
    thread count is set once for that thread; the main thread and threads started afterwards keep
    the count they had (PyTorch's default for new threads is put back)."""
    import threading

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = {}
    paused, resume = threading.Event(), threading.Event()

    def visitor():
        steps = stream(small(), [1, 2, 3], 6)
        next(steps), next(steps)  # decoding, between two steps
        seen["visitor"] = torch.get_num_threads()
        paused.set()
        resume.wait(10)
        list(steps)

    def newcomer():
        seen["newcomer"] = torch.get_num_threads()

    try:
        worker = threading.Thread(target=visitor)
        worker.start()
        assert paused.wait(10)
        later = threading.Thread(target=newcomer)
        later.start()
        later.join()
        seen["main"] = torch.get_num_threads()
        resume.set()
        worker.join(10)
        assert seen == {"visitor": 1, "newcomer": 2, "main": 2}
    finally:
        resume.set()
        torch.set_num_threads(before)


def test_the_decoder_refuses_a_model_it_does_not_know():
    """Its one accessor reads the layers by name and checks their shapes: a changed model is a
    clear error, never text from the wrong weights."""
    from gpt40k.errors import GenerationError
    from gpt40k.generate.decoder import FastDecoder

    model = small()
    model.blocks[1].mlp.fc = torch.nn.Linear(model.config.n_embd, 3 * model.config.n_embd)
    with pytest.raises(GenerationError, match="block 1 is not what model.py builds.*mlp.fc.weight"):
        FastDecoder(model)
    with pytest.raises(GenerationError, match="decodes a gpt40k GPT, not Linear"):
        FastDecoder(torch.nn.Linear(2, 2))
