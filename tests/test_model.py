import math

import pytest
import torch

from gpt40k import GPT, GPTConfig
from gpt40k.training.config import PRESETS, build_config


def small(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0)
    return GPT(GPTConfig(**{**cfg, **kw})).eval()


def test_forward_shapes_and_loss():
    model = small()
    idx = torch.randint(0, 11, (3, 10))
    out = model(idx)
    assert out.logits.shape == (3, 10, 11) and out.loss is None and out.attentions is None
    logits, loss, _ = model(idx, idx)
    assert logits is not None and loss.ndim == 0
    # an untrained model predicts about uniformly: loss ~ ln(vocab)
    assert abs(loss.item() - math.log(11)) < 0.3


def test_attention_weights_per_head_are_causal_rows_of_probability():
    model = small()
    out = model(torch.randint(0, 11, (2, 9)), return_attention=True)
    assert len(out.attentions) == 2
    for att in out.attentions:
        assert att.shape == (2, 4, 9, 9)  # (batch, heads, query, key)
        torch.testing.assert_close(att.sum(-1), torch.ones(2, 4, 9))
        assert torch.all(att.triu(diagonal=1) == 0)  # nothing attends to the future


def test_future_tokens_do_not_change_past_logits():
    model = small()
    idx = torch.randint(0, 11, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 11
    torch.testing.assert_close(model(idx).logits[:, :8], model(changed).logits[:, :8])


def test_fused_kernel_matches_explicit_attention():
    model = small(dropout=0.0)
    idx = torch.randint(0, 11, (2, 16))
    model.set_attention_kernel("math")
    explicit = model(idx).logits
    model.set_attention_kernel("fused")
    torch.testing.assert_close(model(idx).logits, explicit, atol=1e-5, rtol=1e-5)
    # asking for the weights always takes the explicit path, whatever the kernel
    assert model(idx, return_attention=True).attentions[0].shape == (2, 4, 16, 16)
    with pytest.raises(ValueError, match="attention kernel"):
        model.set_attention_kernel("flash")


def test_longer_than_block_size_is_a_clear_error():
    with pytest.raises(ValueError, match="exceed the model's block_size of 16"):
        small()(torch.zeros(1, 17, dtype=torch.long))


def test_gpt2_init_scales_residual_projections():
    model = small(n_layer=4, n_embd=64)
    proj_std = model.blocks[0].attn.proj.weight.std().item()
    fc_std = model.blocks[0].mlp.fc.weight.std().item()
    assert abs(fc_std - 0.02) < 0.003
    assert abs(proj_std - 0.02 / math.sqrt(8)) < 0.002
    assert torch.all(model.blocks[0].mlp.fc.bias == 0)


@pytest.mark.parametrize("bad, message", [
    (dict(n_embd=30, n_head=4), "divisible"),
    (dict(dropout=1.0), "dropout"),
    (dict(n_layer=0), "n_layer"),
    (dict(activation="tanh"), "activation"),
])
def test_config_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**dict(vocab_size=5), **bad})


def test_config_round_trip_and_foreign_configs():
    cfg = GPTConfig(vocab_size=7, n_layer=3)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="not a GPT-40k model"):
        GPTConfig.from_dict({"model_type": "llama", "vocab_size": 7})
    with pytest.raises(ValueError, match="missing"):
        GPTConfig.from_dict({"model_type": "gpt40k", "vocab_size": 7})


def test_preset_sizes():
    def params(preset):
        return GPT(build_config(preset, {"data": ["x"]}).model_config(vocab_size=97)).num_parameters()
    assert 1.8e6 < params("seed") < 1.9e6  # the seed's ~1.85M at a 97-character vocabulary
    assert 18e6 < params("seed-20m") < 22e6
    assert params("tiny") < 50_000
    assert set(PRESETS) == {"seed", "seed-20m", "cpu", "tiny"}


def test_on_a_cpu_auto_is_exactly_the_lectures_code_and_fused_agrees():
    """model.py alone: "auto" on a CPU runs causal_attention itself (bit for bit "math"); "fused"
    (PyTorch's kernel) computes the same to rounding, with and without a KV cache."""
    model = small(dropout=0.0)
    idx = torch.randint(0, 11, (2, 16))
    model.set_attention_kernel("math")
    reference = model(idx).logits
    model.set_attention_kernel("auto")
    assert torch.equal(model(idx).logits, reference)
    model.set_attention_kernel("fused")
    torch.testing.assert_close(model(idx).logits, reference, atol=1e-5, rtol=1e-5)
    cache = model.new_cache(2)  # 10 positions, then 6 more after them: a mask with an offset
    model(idx[:, :10], cache=cache)
    torch.testing.assert_close(model(idx[:, 10:], cache=cache).logits, reference[:, 10:], atol=1e-5, rtol=1e-5)


def test_the_lectures_model_uses_pytorchs_exact_dropout():
    """No CPU trick inside model.py: every dropout is nn.Dropout with the exact p."""
    model = small(dropout=0.2).train()
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 1 + 3 * 2 and all(type(m) is torch.nn.Dropout and m.p == 0.2 for m in drops)
    x = torch.ones(400, 400)
    torch.manual_seed(0)
    y = model.dropout(x)
    torch.manual_seed(0)
    assert torch.equal(y, torch.nn.functional.dropout(x, 0.2))


def test_the_lectures_generate_draws_what_stream_draws_with_slide_1():
    """GPT.generate, the lecture's loop (a full forward pass a character), and the fast sampler
    with the seed's window give the same characters from the same generator, past block_size too."""
    from gpt40k.generate import stream

    model = small()
    prompt = torch.randint(0, 11, (1, 5))
    slow = model.generate(prompt, 30, temperature=0.9, top_k=6, generator=torch.Generator().manual_seed(3))
    fast = [s.token.item() for s in stream(model, prompt, 30, temperature=0.9, top_k=6, slide=1,
                                           generator=torch.Generator().manual_seed(3))]
    assert slow[0, 5:].tolist() == fast and slow.shape == (1, 35)


def test_train_config_takes_the_models_fields_from_gptconfig():
    """One list of the model's fields: GPTConfig's, with its defaults, are TrainConfig's flags."""
    from dataclasses import fields

    from gpt40k.training.config import TrainConfig

    model = {f.name: (f.type, f.default) for f in fields(GPTConfig) if f.name != "vocab_size"}
    train = {f.name: (f.type, f.default) for f in fields(TrainConfig) if f.name in model}
    assert train == model and "vocab_size" not in {f.name for f in fields(TrainConfig)}
    cfg = build_config("tiny", {"data": ["x"], "n_layer": 3, "activation": "relu"}).model_config(vocab_size=5)
    assert (cfg.n_layer, cfg.activation, cfg.vocab_size) == (3, "relu", 5)
