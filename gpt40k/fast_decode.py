"""One new character through the model with a KV cache, as plain function calls.

Generating a character is a single position: a few hundred kFLOP per layer, microseconds of
arithmetic. What costs is everything around it: a module call, a dropout that does nothing in
eval mode, a view, a mask, each a few microseconds, fifty of them a layer. This is
``GPT.forward`` for that one case with those removed: the same operations on the same weights
in the same order, so the same numbers (tests/test_generation.py compares them), about twice as
fast on a CPU (bench/speed.py). ``gpt40k.generation`` uses it for every step after the prompt,
on one thread.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .errors import GenerationError


@contextmanager
def one_cpu_thread(device: torch.device):
    """Run a step on one CPU thread. A character is too small a job to share: a second thread
    adds the cost of waking it, and where the two CPUs are hyperthreads of one core, its spinning
    slows the first. Set and restored around each step only, never across a ``yield``."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class FastDecoder:
    """Holds the model's weights as flat tuples, looked up once instead of at every step."""

    def __init__(self, model):
        cfg = model.config
        self.model, self.n_head, self.n_embd = model, cfg.n_head, cfg.n_embd
        self.sqrt_head_size = math.sqrt(cfg.head_size)
        self.eps = model.ln_f.eps
        self.act = F.gelu if cfg.activation == "gelu" else F.relu
        self.layers = [(b.ln1.weight, b.ln1.bias, b.attn.qkv.weight, b.attn.qkv.bias, b.attn.proj.weight,
                        b.attn.proj.bias, b.ln2.weight, b.ln2.bias, b.mlp.fc.weight, b.mlp.fc.bias,
                        b.mlp.proj.weight, b.mlp.proj.bias) for b in model.blocks]
        self.final = (model.ln_f.weight, model.ln_f.bias, model.lm_head.weight, model.lm_head.bias)

    def step(self, idx: torch.Tensor, cache, return_attention: bool = False):
        """Logits (B, 1, vocab) of one new position ``idx`` (B, 1) after the ``cache.length`` cached
        ones, and (when asked) each layer's attention weights (B, n_head, 1, length + 1)."""
        B, C, H = idx.size(0), self.n_embd, self.n_head
        pos = cache.length
        if pos + 1 > self.model.config.block_size:
            block = self.model.config.block_size
            raise GenerationError(f"{pos + 1} positions exceed the model's block_size of {block}")
        x = F.embedding(idx[:, 0], self.model.token_embedding.weight) + self.model.position_embedding.weight[pos]
        attentions = [] if return_attention else None
        BH, D = B * H, C // H
        for layer, (g1, b1, w_qkv, b_qkv, w_o, b_o, g2, b2, w_fc, b_fc, w_out, b_out) in enumerate(self.layers):
            qkv = F.linear(torch.layer_norm(x, (C,), g1, b1, self.eps), w_qkv, b_qkv)
            q, k, v = qkv.view(B, 3, H, D).unbind(1)  # each (B, n_head, head_size)
            layer_keys, layer_values = cache.keys[layer], cache.values[layer]  # (B, n_head, block_size, head_size)
            layer_keys[:, :, pos] = k
            layer_values[:, :, pos] = v
            # (B * n_head) one-row products: bmm directly, without matmul's broadcasting work
            keys = layer_keys[:, :, :pos + 1].reshape(BH, pos + 1, D)
            weights = torch.softmax(torch.bmm((q / self.sqrt_head_size).view(BH, 1, D), keys.transpose(1, 2)), -1)
            if return_attention:
                attentions.append(weights.view(B, H, 1, pos + 1))
            y = torch.bmm(weights, layer_values[:, :, :pos + 1].reshape(BH, pos + 1, D))
            x = x + F.linear(y.view(B, C), w_o, b_o)
            x = x + F.linear(self.act(F.linear(torch.layer_norm(x, (C,), g2, b2, self.eps), w_fc, b_fc)), w_out, b_out)
        cache.advance(1)
        g, b, w, bias = self.final
        return F.linear(torch.layer_norm(x, (C,), g, b, self.eps), w, bias).unsqueeze(1), attentions
