"""One new character through the model with a KV cache, as plain function calls.

Generating a character is a single position: a few hundred kFLOP per layer, microseconds of
arithmetic. What costs is everything around it: a module call, a dropout that does nothing in
eval mode, a view, a mask, each a few microseconds, fifty of them a layer. ``FastDecoder.step``
is ``GPT.forward`` for that one case with those removed: the same operations on the same weights,
so the same numbers up to rounding (tests/test_generation.py compares them), twice as fast on a
CPU (bench/speed.py). ``gpt40k.generate`` uses it for every step after the prompt, on one
thread, and ``FastDecoder.fill`` when the window jumps. On a GPU, where each of those operations
is a kernel launched from Python, ``CudaGraphStep`` records the same step once and replays it.
The weights come from the model through one accessor, ``decoder_weights``, which checks that the
model is the one model.py builds (a renamed or reshaped layer is an error, not wrong text).
"""

from __future__ import annotations

import logging
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GenerationError
from ..model.model import GPT, Block

log = logging.getLogger(__name__)


_thread = threading.local()  # .single: this (non-main) thread already decodes on one CPU thread


@contextmanager
def one_cpu_thread(device: torch.device):
    """Run a decoding step on one CPU thread. A character is too small a job to share: a second
    thread adds the cost of waking it, and where the two CPUs are hyperthreads of one core, its
    spinning slows the first.

    PyTorch's thread count (OpenMP's) belongs to the calling thread, but setting it also sets the
    count that threads started afterwards begin with. So a server's decoding thread (any but the
    main one) is set once, for good, and that default put straight back (``_one_thread_for_good``);
    the main thread (train.py, the CLI, benchmarks: nothing else runs beside it) is set and restored
    around each step, since it does other work between steps (training, the prompt's forward pass).
    A caller that decodes now and then in a thread that also does heavy work (a trainer's samples,
    where training may run in a thread of its own) wraps the generation in ``thread_count_kept``.
    """
    if device.type != "cpu":
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        if not getattr(_thread, "single", False):
            _one_thread_for_good()
        yield
        return
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _one_thread_for_good() -> None:
    """This thread decodes on one CPU thread from now on; threads started later keep the default."""
    default = torch.get_num_threads()
    torch.set_num_threads(1)
    _thread.single = True
    if default > 1:  # set_num_threads also set the default for new threads: a short thread resets it
        helper = threading.Thread(target=torch.set_num_threads, args=(default,), name="gpt40k-threads")
        helper.start()
        helper.join()


@contextmanager
def thread_count_kept():
    """Give this thread its CPU thread count back after a whole generation, wherever it runs: a
    trainer in a thread of its own samples, then trains on all its threads again."""
    threads, single = torch.get_num_threads(), getattr(_thread, "single", False)
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        _thread.single = single


def decoder_weights(model: GPT) -> tuple[list[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]:
    """The model's weights laid out for ``FastDecoder``: per block (ln1 weight, bias; qkv weight,
    bias; proj weight, bias; ln2 weight, bias; fc weight, bias; mlp proj weight, bias), then the final
    norm and the head. The one place that reads the model's layers by name: anything but the layers
    model.py builds, with the config's shapes, is a GenerationError here rather than wrong text."""
    if not isinstance(model, GPT):
        raise GenerationError(f"FastDecoder decodes a gpt40k GPT, not {type(model).__name__}")
    cfg, C = model.config, model.config.n_embd
    expected = {"attn.qkv.weight": (3 * C, C), "attn.proj.weight": (C, C), "mlp.fc.weight": (4 * C, C),
                "mlp.proj.weight": (C, 4 * C), "ln1.weight": (C,), "ln2.weight": (C,)}
    for i, block in enumerate(model.blocks):
        shapes = {name: tuple(p.shape) for name, p in block.named_parameters()}
        wrong = {n: shapes.get(n) for n, shape in expected.items() if shapes.get(n) != shape}
        if not isinstance(block, Block) or wrong:
            raise GenerationError(f"block {i} is not what model.py builds for this config (expected "
                                  f"{expected}, found {wrong or type(block).__name__}): FastDecoder cannot decode it")
    layers = [(b.ln1.weight, b.ln1.bias, *_query_scaled(b.attn.qkv, cfg), *_transposed(b.attn.proj),
               b.ln2.weight, b.ln2.bias, *_mlp(b.mlp, cfg)) for b in model.blocks]
    return layers, (model.ln_f.weight, model.ln_f.bias, *_transposed(model.lm_head))


@dataclass
class StepInternals:
    """What one decoding step computed on the way: the residual stream after the embedding and
    after each block (n_layer + 1 tensors of (B, n_embd)), and each block's heads' outputs side by
    side before the output projection (n_layer tensors of (B, n_embd))."""

    residual: list[torch.Tensor]
    heads_out: list[torch.Tensor]


class FastDecoder:
    """The model's weights laid out for single positions, once per generation instead of at every step.

    Matrices are stored transposed, (in, out) and contiguous: a one-row product with them reads
    the weights in order (20-30% faster than ``F.linear``'s transposed view on a CPU). The query
    columns of the attention's projection come pre-multiplied by 1/sqrt(head_size), which saves a
    pass per layer; the MLP's GELU becomes two cheap passes (``_mlp``). All change the rounding
    only (tests allow 1e-6). The copies cost the model's size in memory (7 MB for the shipped one)
    and 4 ms to make, and serve one generation: weights changed afterwards (training) need a new
    decoder, as ``gpt40k.generate`` makes for every generation.
    """

    use_cuda_graph = True  # on a GPU, replay the step as a CudaGraphStep; False launches it op by op

    def __init__(self, model: GPT):
        self.layers, self.final = decoder_weights(model)
        cfg = model.config
        self.model, self.n_head, self.n_embd = model, cfg.n_head, cfg.n_embd
        self.eps = model.ln_f.eps
        self.act = _erf_gelu if cfg.activation == "gelu" else F.relu
        self._graph: CudaGraphStep | None = None  # on a GPU: the step recorded for the cache in use
        self._views: tuple | None = None  # (the cache, its per-layer views): see _buffers

    def step(self, idx: torch.Tensor, cache, return_attention: bool = False, return_internals: bool = False):
        """Logits (B, 1, vocab) of one new position ``idx`` (B, 1) after the ``cache.length`` cached
        ones, (when asked) each layer's attention weights (B, n_head, 1, length + 1), and (when asked)
        ``StepInternals``: the residual stream and the heads' outputs, for the page's logit lens and
        attribution (then, on a GPU, the step is launched op by op rather than replayed)."""
        pos, block = cache.length, self.model.config.block_size
        if pos + 1 > block:
            raise GenerationError(f"{pos + 1} positions exceed the model's block_size of {block}")
        internals = StepInternals([], []) if return_internals else None
        if idx.is_cuda and self.use_cuda_graph and internals is None:
            logits, attentions = self._graph_for(cache).step(idx, pos, return_attention)
        else:
            def store(buffer: torch.Tensor, new: torch.Tensor) -> None:
                buffer.select(2, pos).copy_(new)

            position = self.model.position_embedding.weight.select(0, pos)
            logits, attentions = self.forward_one(idx.view(-1), position, cache, store, pos + 1, None,
                                                  return_attention, internals)
        cache.advance(1)
        return logits, attentions, internals

    def forward_one(self, idx: torch.Tensor, position: torch.Tensor, cache, store, length: int,
                    mask: torch.Tensor | None, return_attention: bool, internals: StepInternals | None = None):
        """The step itself, for the CPU and the CUDA graph alike: tokens ``idx`` (B,) at the position
        whose embedding is ``position`` through the blocks and the head. ``store(buffer, new)`` writes
        the new key and value into the cache; the step attends to the first ``length`` cached
        positions (less those ``mask`` hides). ``internals``, when given, collects the stream and
        the heads' outputs."""
        x = self.model.token_embedding.weight.index_select(0, idx)  # (B, n_embd), a new tensor
        x.add_(position)
        if internals is not None:
            internals.residual.append(x.clone())
        B, C, H = x.size(0), self.n_embd, self.n_head
        BH, D = B * H, C // H
        addmm, norm, shape, eps = torch.addmm, torch.layer_norm, (C,), self.eps
        attentions = [] if return_attention else None
        for (g1, b1, w_qkv, b_qkv, w_o, b_o, g2, b2, w_fc, b_fc, w_out, b_out), (keys, values, keys_bh, values_bh) \
                in zip(self.layers, self._buffers(cache)):
            q, k, v = addmm(b_qkv, norm(x, shape, g1, b1, eps), w_qkv).view(B, 3, H, D).unbind(1)
            store(keys, k)
            store(values, v)
            # (B * n_head) one-row products: bmm directly, without matmul's broadcasting work
            scores = torch.bmm(q.reshape(BH, 1, D), keys_bh.narrow(1, 0, length).transpose(1, 2))
            if mask is not None:
                scores.masked_fill_(mask, -math.inf)
            weights = torch.softmax(scores, -1)  # q came scaled by 1/sqrt(head_size)
            if return_attention:
                attentions.append(weights.view(B, H, 1, length))
            y = torch.bmm(weights, values_bh.narrow(1, 0, length))
            # the residual stream in place: addmm_ adds the product into x (a tensor made by this step),
            # saving addmm's new tensor and its copy of the bias, then a separate add of x
            x = x.addmm_(y.view(B, C), w_o).add_(b_o)
            x = x.addmm_(self.act(addmm(b_fc, norm(x, shape, g2, b2, eps), w_fc)), w_out).add_(b_out)
            if internals is not None:
                internals.heads_out.append(y.view(B, C).clone())
                internals.residual.append(x.clone())
        g, b, w, bias = self.final
        return addmm(bias, norm(x, shape, g, b, eps), w).unsqueeze(1), attentions

    def _buffers(self, cache) -> list[tuple[torch.Tensor, ...]]:
        """Per layer: its keys and values (B, n_head, block_size, head_size), and the same as
        (B * n_head, block_size, head_size) for bmm. Views of the cache's buffers, made once per
        cache rather than a few per layer at every step (each view costs about as much as a small op).
        Made at the first step, after the prompt's forward: views made before autograd saw writes to the
        buffers refuse writes of their own when grad is on."""
        if self._views is None or self._views[0] is not cache:  # a cache's buffers are made once, never replaced
            keys, values = cache.keys, cache.values
            L, B, H, T, D = keys.shape
            # select, not unbind: autograd refuses in-place writes into unbind's views (tests run with grad)
            per_layer = [(keys[i], values[i], keys[i].view(B * H, T, D), values[i].view(B * H, T, D))
                         for i in range(L)]
            self._views = (cache, per_layer)
        return self._views[1]

    def _graph_for(self, cache) -> CudaGraphStep:
        if self._graph is None or self._graph.cache is not cache:
            self._graph = CudaGraphStep(self, cache)
        return self._graph

    def fill(self, tokens: torch.Tensor, cache) -> None:
        """Cache the keys and values of ``tokens`` (B, T) after the cached positions, as
        ``model(tokens, cache=cache)`` does, without the outputs nobody reads when the
        window jumps: the last block's keys and values need only its input, so its attention, its
        MLP and the head are skipped (about a fifth of a jump's work in the shipped model)."""
        model, T = self.model, tokens.size(1)
        positions = torch.arange(cache.length, cache.length + T, device=tokens.device)
        x = model.dropout(model.token_embedding(tokens) + model.position_embedding(positions))
        *blocks, last = model.blocks
        for layer, block in enumerate(blocks):
            x, _ = block(x, cache, layer)
        _, k, v = last.attn.split_heads(last.ln1(x))
        cache.append(len(blocks), k, v)
        cache.advance(T)


class CudaGraphStep:
    """``FastDecoder.step`` on a GPU, recorded once as a CUDA graph and replayed for every character.

    Launched one by one from Python, a character's ~80 tiny kernels keep a GPU waiting on its host:
    the page wrote 460-710 characters a second that way on an H100, fewer than on that machine's CPU,
    and 1,100-1,800 with the graph (bench/gpu_check.py). A graph replays fixed shapes on fixed
    memory, so this step reads its token and position from two small tensors, attends over the
    cache's whole buffer with the keys after its position masked out (their weights are exactly 0),
    and leaves its outputs in the same tensors at every replay (``step`` returns copies). On a CPU
    it runs the same code unrecorded, which is how the tests check it against ``FastDecoder.step``.
    """

    _recording = threading.Lock()  # visitors' generations run in threads: one recording at a time

    def __init__(self, decoder: FastDecoder, cache):
        self.decoder, self.cache = decoder, cache
        device, batch, block = cache.keys.device, cache.keys.size(1), cache.keys.size(3)
        self.idx = torch.zeros(batch, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.key_positions = torch.arange(block, device=device)
        self.graph: torch.cuda.CUDAGraph | None | bool = None  # False: recording failed
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def step(self, idx: torch.Tensor, pos: int, return_attention: bool):
        """As ``FastDecoder.step`` for ``idx`` (B, 1) at position ``pos`` (the cache's length)."""
        self.idx.copy_(idx.view(-1))
        self.pos.fill_(pos)
        if self.idx.is_cuda and self.graph is None:
            self._record()
        if self.graph:
            with torch.cuda.device(self.idx.device):  # a graph replays on its own GPU's stream
                self.graph.replay()
            logits, weights = self.outputs
        else:  # a CPU, or a GPU where recording failed: the same step, launched op by op
            logits, weights = self._run()
        if not return_attention:
            return logits.clone(), None
        B, H, L = self.idx.numel(), self.decoder.n_head, pos + 1
        weights = weights[..., :L].clone()  # (layers, B * n_head, 1, L): the keys up to pos
        return logits.clone(), [w.view(B, H, 1, L) for w in weights]

    def _run(self) -> tuple[torch.Tensor, torch.Tensor]:
        position = self.decoder.model.position_embedding.weight.index_select(0, self.pos)  # (1, n_embd)
        mask = self.key_positions > self.pos
        logits, weights = self.decoder.forward_one(self.idx, position, self.cache, self._store,
                                                   self.key_positions.numel(), mask, return_attention=True)
        return logits, torch.stack(weights).flatten(1, 2)  # (layers, B * n_head, 1, block_size)

    def _store(self, buffer: torch.Tensor, new: torch.Tensor) -> None:
        buffer.index_copy_(2, self.pos, new.unsqueeze(2))

    def _record(self) -> None:
        try:
            self._record_graph()
        except RuntimeError as e:  # an old driver, a GPU or a build without graphs: slower, same numbers
            log.warning("could not record the decoding step as a CUDA graph (%s); launching it op by op", e)
            self.graph = False

    def _record_graph(self) -> None:
        device = self.idx.device
        # On the tensors' GPU: recording on another one's stream would record nothing, silently.
        with self._recording, torch.cuda.device(device):
            # A first run outside the recording sets up cuBLAS's workspace and the allocator, as
            # PyTorch's CUDA-graph notes ask. It is this very step: replaying it rewrites the same slots.
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                self._run()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: other visitors' threads may launch their own kernels meanwhile
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.outputs = self._run()
            self.graph = graph


def _transposed(linear: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight as (in, out) contiguous, bias), a bias of zeros where the layer has none (adds nothing).
    The weight is always a copy, which callers may scale in place."""
    weight = linear.weight.detach().t().clone(memory_format=torch.contiguous_format)
    bias = linear.bias if linear.bias is not None else weight.new_zeros(weight.size(1))
    return weight, bias.detach()


def _query_scaled(qkv: torch.nn.Linear, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """``_transposed`` with the query's columns (the first n_embd) times 1/sqrt(head_size)."""
    weight, bias = _transposed(qkv)
    bias = bias.clone()
    scale = 1 / math.sqrt(cfg.head_size)
    weight[:, :cfg.n_embd] *= scale
    bias[:cfg.n_embd] *= scale
    return weight, bias


def _mlp(mlp: torch.nn.Module, cfg) -> tuple[torch.Tensor, ...]:
    """The MLP's two layers, ``_transposed``. For GELU, gelu(u) = u (1 + erf(u / sqrt 2)) / 2: with the
    first layer giving u / sqrt 2 and the second taking the other 1 / sqrt 2, what is left between
    them is ``_erf_gelu``, about half the time of PyTorch's GELU kernel on one row."""
    w_fc, b_fc = _transposed(mlp.fc)
    w_out, b_out = _transposed(mlp.proj)
    if cfg.activation == "gelu":
        w_fc, b_fc, w_out = w_fc * math.sqrt(0.5), b_fc * math.sqrt(0.5), w_out * math.sqrt(0.5)
    return w_fc, b_fc, w_out, b_out


def _erf_gelu(u: torch.Tensor) -> torch.Tensor:
    """sqrt(2) gelu(sqrt(2) u) = u + u erf(u), for ``_mlp``'s scaled layers. One fused pass after the
    erf: ``.add_(1).mul_(u)`` was two, and its Python 1 became a tensor at every call."""
    return torch.addcmul(u, u, torch.erf(u))
