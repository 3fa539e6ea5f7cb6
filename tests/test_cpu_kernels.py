"""The CPU kernels compute what the lecture's code computes (model.causal_attention), and swapping
them into a model (use_cpu_kernels) changes nothing but the speed and dropout's rounding."""

import pytest
import torch

from gpt40k.model.model import causal_attention
from gpt40k.training.cpu_kernels import (ByteDropout, CPUCausalSelfAttention, chunked_causal_attention,
                                        use_cpu_kernels)


def qkv(B=2, H=3, T=12, past=0, D=8, dtype=torch.float64, as_in_the_model=False):
    """q, k, v; ``as_in_the_model``: views of one (B, T, 3, H, D) projection, transposed, as the
    model hands them over (without a cache, so past = 0)."""
    g = torch.Generator().manual_seed(0)
    if as_in_the_model:
        x = torch.randn(B, T, 3, H, D, generator=g, dtype=dtype, requires_grad=True)
        return tuple(x[:, :, i].transpose(1, 2) for i in range(3))
    q = torch.randn(B, H, T, D, generator=g, dtype=dtype, requires_grad=True)
    k = torch.randn(B, H, past + T, D, generator=g, dtype=dtype, requires_grad=True)
    v = torch.randn(B, H, past + T, D, generator=g, dtype=dtype, requires_grad=True)
    return q, k, v


@pytest.mark.parametrize("p, past, as_in_the_model", [(0.0, 0, False), (0.2, 0, False), (0.1, 5, False),
                                                      (0.2, 0, True)])
def test_chunked_attention_equals_the_lecture_with_the_same_dropout_draws(p, past, as_in_the_model, monkeypatch):
    import gpt40k.training.cpu_kernels as kernels

    monkeypatch.setattr(kernels, "MAP_CHUNK_BYTES", 4 * 3 * 5 * 17)  # one batch entry (3 heads) per tile
    monkeypatch.setattr(kernels, "ROW_BLOCK", 5)  # 12 rows in blocks of 5, 5 and 2
    q, k, v = qkv(past=past, as_in_the_model=as_in_the_model)
    dy = torch.randn(q.shape, dtype=q.dtype)
    torch.manual_seed(1)
    expected, _ = causal_attention(q, k, v, ByteDropout(p).train())
    expected_grads = torch.autograd.grad(expected, (q, k, v), dy)
    torch.manual_seed(1)
    got = chunked_causal_attention(q, k, v, p)
    grads = torch.autograd.grad(got, (q, k, v), dy)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)
    for g, e in zip(grads, expected_grads):  # recomputed maps, the same masks: the same gradients
        torch.testing.assert_close(g, e, atol=1e-12, rtol=1e-12)


def test_the_models_gradients_are_the_same_with_either_attention():
    """A training step's gradients, every parameter, cpu_kernels against the lecture's code."""
    from gpt40k import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=80, n_layer=2, n_head=3, n_embd=24, dropout=0.0)).double()
    x, y = torch.randint(0, 11, (5, 80)), torch.randint(0, 11, (5, 80))  # 80 rows: two row blocks
    grads = {}
    for kernels in ("math", "cpu_kernels"):
        if kernels == "cpu_kernels":
            use_cpu_kernels(model)
        model.zero_grad()
        model(x, y).loss.backward()
        grads[kernels] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, g in grads["math"].items():
        torch.testing.assert_close(grads["cpu_kernels"][name], g, atol=1e-12, rtol=1e-10, msg=name)


def test_use_cpu_kernels_swaps_modules_and_keeps_the_weights():
    """The trainer's one call: attention and dropout modules swapped, parameters the same objects
    (an optimizer made before or after sees them), the state dict's names unchanged, logits equal."""
    from gpt40k import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.2)).eval()
    idx = torch.randint(0, 11, (2, 32))
    params, names, reference = list(model.parameters()), list(model.state_dict()), model(idx).logits
    assert use_cpu_kernels(model) is model
    assert [type(b.attn) for b in model.blocks] == [CPUCausalSelfAttention] * 2
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 7 and all(type(m) is ByteDropout and m.p == 0.2 for m in drops)
    assert all(a is b for a, b in zip(model.parameters(), params)) and list(model.state_dict()) == names
    torch.testing.assert_close(model(idx).logits, reference, atol=1e-5, rtol=1e-5)
    # the weights are never asked of the chunked kernel: the page's view comes from causal_attention
    assert model(idx, return_attention=True).attentions[0].shape == (2, 2, 32, 32)


def test_the_trainer_swaps_the_kernels_in_on_cpu_with_auto_only(books, tmp_path):
    from gpt40k.training.config import build_config
    from gpt40k.training.trainer import Trainer

    for attention, expected in (("auto", ByteDropout), ("math", torch.nn.Dropout), ("fused", torch.nn.Dropout)):
        cfg = build_config("tiny", dict(data=[str(books)], out=str(tmp_path / attention), attention=attention,
                                        dropout=0.1, max_iters=1))
        model = Trainer(cfg).model
        assert {type(m) for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {expected}


def test_chunked_attention_passes_gradcheck():
    q, k, v = qkv(B=1, H=2, T=5, D=3)
    assert torch.autograd.gradcheck(lambda q, k, v: chunked_causal_attention(q, k, v, 0.0), (q, k, v))


def test_chunked_attention_under_bf16_autocast_is_close_to_fp32():
    q, k, v = (t.detach().float() for t in qkv(T=32, D=16))
    expected, _ = causal_attention(q, k, v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = chunked_causal_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, atol=0.03, rtol=0.03)


def test_byte_dropout_drops_p_rounded_to_256ths_and_keeps_the_mean():
    drop = ByteDropout(0.2)
    x = torch.ones(1000, 1000)
    torch.manual_seed(0)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 51 / 256) < 0.003  # 0.2 rounds to 51/256
    assert abs(y.mean().item() - 1.0) < 0.01  # survivors are scaled up: the expectation is kept
    assert set(torch.unique(y).tolist()) == {0.0, torch.tensor(256 / 205).item()}
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the global RNG drives it: a resumed run draws the same masks
    assert torch.equal(drop.eval()(x), x)
    x.requires_grad_(True)
    drop.train()(x).sum().backward()
    assert set(torch.unique(x.grad).tolist()) == {0.0, torch.tensor(256 / 205).item()}
