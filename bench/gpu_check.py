"""The CUDA paths, run for real: a GPU check to run wherever a GPU is at hand.

    python bench/gpu_check.py [--steps 200] [--out gpu_check.json]

Trains the `seed` preset (batch 64 x block 256, ~1.8M parameters) for a fixed number of steps
in each precision and kernel the trainer can pick on CUDA: fp32, fp16 + GradScaler (what
`--dtype auto` picks below compute capability 8.0, e.g. Kaggle's T4), bf16 (8.0 and up), the
fused attention kernel against the explicit one, and `torch.compile`. For each it prints
tokens/s and peak memory, and checks that the loss went down. Then it saves the last model,
reloads it on the CPU and compares logits with the GPU's, and samples on the GPU with the KV
cache. Last, the shipped model writes as the page has it write (attention rows included): on the
GPU with its decoding step recorded as a CUDA graph, without the graph, and on this machine's CPU
on one thread; the graph must give the logits of the step launched op by op (four prompts in one
batch) and the same page text, also with four visitors at once. Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt40k import GPT  # noqa: E402
from gpt40k.app.request import GenerationRequest  # noqa: E402
from gpt40k.app.transcript import generate as page_generate  # noqa: E402
from gpt40k.checkpoint import load, save_checkpoint  # noqa: E402
from gpt40k.training.config import build_config  # noqa: E402
from gpt40k.generate.decoder import FastDecoder  # noqa: E402
from gpt40k.generate.sampling import stream  # noqa: E402
from gpt40k.project import default_checkpoint  # noqa: E402
from gpt40k.device import autocast, cuda_has_native_bf16, describe_cpu, resolve_dtype  # noqa: E402
from gpt40k.model.tokenizer import CharTokenizer  # noqa: E402
from gpt40k.training.cpu_kernels import set_attention  # noqa: E402
from gpt40k.training.trainer import make_optimizer  # noqa: E402

VOCAB = 97
MIN_STEPS = 50  # with the 10 warm-up steps, enough for the loss to fall by LEARNED_NATS (~0.7 after 50)
LEARNED_NATS = 0.5  # from ln(97) = 4.57, where a model that learns nothing stays


def variants(device: torch.device) -> list[tuple[str, torch.dtype, str, bool]]:
    """(name, autocast dtype, attention kernel, compiled)."""
    rows = [("fp32, explicit attention", torch.float32, "math", False),
            ("fp32, fused attention", torch.float32, "fused", False),
            ("fp16 + GradScaler, fused attention", torch.float16, "fused", False)]
    if cuda_has_native_bf16(device):
        rows += [("bf16, explicit attention", torch.bfloat16, "math", False),
                 ("bf16, fused attention (auto)", torch.bfloat16, "fused", False),
                 ("bf16, fused attention, torch.compile", torch.bfloat16, "fused", True)]
    else:
        rows += [("fp16 + GradScaler, fused attention, torch.compile", torch.float16, "fused", True)]
    return rows


def train(name: str, dtype: torch.dtype, kernel: str, compiled: bool, steps: int, device: torch.device) -> dict:
    cfg = build_config("seed", {"data": ["-"]})
    torch.manual_seed(0)
    model = GPT(cfg.model_config(VOCAB)).to(device)
    set_attention(model, kernel, device)
    optimizer = make_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    runner = torch.compile(model) if compiled else model
    # A learnable stream (a repeating pattern with noise), so the loss must fall if training works.
    gen = torch.Generator().manual_seed(0)
    base = torch.randint(VOCAB, (4096,), generator=gen)

    def batch():
        starts = torch.randint(4096 - cfg.block_size - 1, (cfg.batch_size,), generator=gen)
        w = torch.stack([base[s:s + cfg.block_size + 1] for s in starts.tolist()]).to(device)
        return w[:, :-1], w[:, 1:]

    def step() -> float:
        x, y = batch()
        with autocast(device, dtype):
            loss = runner(x, y).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    t0 = time.perf_counter()
    first = step()
    for _ in range(9):  # warm-up (and compilation)
        step()
    torch.cuda.synchronize(device)
    warm_s = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        last = step()
    torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    return {"variant": name, "tokens_per_s": steps * cfg.batch_size * cfg.block_size / elapsed,
            "ms_per_step": 1000 * elapsed / steps, "warmup_s": warm_s, "first_loss": first, "last_loss": last,
            "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20, "learned": last < first - LEARNED_NATS,
            "model": model}


def check_reload(model: GPT, device: torch.device) -> dict:
    """Save on the GPU, load on the CPU: the same logits (fp32 on both sides)."""
    tok = CharTokenizer([chr(32 + i) for i in range(VOCAB)])
    x = torch.randint(VOCAB, (2, 64), generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        gpu_logits = model(x.to(device)).logits.float().cpu()
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(model, d, tok)
        cpu_model = load(d, device="cpu").model
    with torch.no_grad():
        cpu_logits = cpu_model(x).logits
    # TF32 may be on for matmuls on the GPU: allow its rounding, not a real mismatch.
    err = ((gpu_logits - cpu_logits).norm() / cpu_logits.norm()).item()
    gen = torch.Generator(device).manual_seed(0)
    t0 = time.perf_counter()
    ids = [int(s.token[0]) for s in stream(model, [0], 500, generator=gen, return_attention=True)]
    chars_s = 500 / (time.perf_counter() - t0)
    return {"reload_rel_error": err, "reload_ok": err < 1e-3, "sampled": len(ids) == 500,
            "gpu_sampling_chars_per_s_with_attention": chars_s}


SHIPPED = default_checkpoint()
GRAPH, OP_BY_OP, CPU_ROW = "GPU, CUDA graph (default)", "GPU, op by op", "this machine's CPU, one thread"


@contextmanager
def cuda_graphs(on: bool):
    before = FastDecoder.use_cuda_graph
    FastDecoder.use_cuda_graph = on
    try:
        yield
    finally:
        FastDecoder.use_cuda_graph = before


def page_run(model, tok, chars: int, seed: int = 0) -> dict:
    """What the page's handler does for one visitor: chars/s, the first character's delay, the text."""
    req = GenerationRequest(prompt="The Emperor protects. ", max_new_chars=chars, temperature=0.8, seed=seed)
    t0 = time.perf_counter()
    first = None
    for transcript, _ in page_generate(model, tok, req):
        first = first if first is not None else time.perf_counter() - t0
    elapsed = time.perf_counter() - t0
    return {"chars_per_s": chars / elapsed, "first_char_s": first, "text": transcript.text}


def step_logits(model, steps: int) -> torch.Tensor:
    """Greedy decoding's logits for ``steps`` characters of four prompts at once (a window jump after 256)."""
    prompts = torch.arange(12).view(4, 3)
    return torch.stack([s.logits.float().cpu() for s in stream(model, prompts, steps, temperature=0.0)])


def check_decoding(device: torch.device, chars: int = 2000) -> dict:
    """The page's decoding on the GPU with and without the CUDA graph, and on this machine's CPU."""
    torch.set_num_threads(1)  # as app.py runs the page
    gpu, cpu = load(SHIPPED, device=device), load(SHIPPED, device="cpu")
    with cuda_graphs(True):
        graph_logits = step_logits(gpu.model, 600)
    with cuda_graphs(False):
        plain_logits = step_logits(gpu.model, 600)
    logit_err = ((graph_logits - plain_logits).abs().max() / plain_logits.abs().max()).item()
    rows = {}
    for name, ckpt, graphs in ((GRAPH, gpu, True), (OP_BY_OP, gpu, False), (CPU_ROW, cpu, True)):
        with cuda_graphs(graphs):
            page_run(ckpt.model, ckpt.tokenizer, 50)  # warm-up
            rows[name] = page_run(ckpt.model, ckpt.tokenizer, chars)
    # Four visitors at once, each in its own thread as Gradio runs them: the same texts as one by one.
    alone = [page_run(gpu.model, gpu.tokenizer, 500, seed)["text"] for seed in range(4)]
    together = [None] * 4

    def visitor(seed: int) -> None:
        together[seed] = page_run(gpu.model, gpu.tokenizer, 500, seed)["text"]

    start = time.perf_counter()
    threads = [threading.Thread(target=visitor, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    four_s = time.perf_counter() - start
    graph_text, plain_text = rows[GRAPH]["text"], rows[OP_BY_OP]["text"]
    return {"cpu": describe_cpu(), "chars": chars, "logit_rel_error_graph_vs_plain": logit_err,
            "same_logits": logit_err < 1e-4, "same_page_text": graph_text == plain_text,
            "four_visitors_same_text": together == alone, "four_visitors_chars_per_s_each": 500 / four_s,
            "rows": {k: {"chars_per_s": v["chars_per_s"], "first_char_s": v["first_char_s"]} for k, v in rows.items()}}


def print_decoding(d: dict) -> None:
    print(f"\nThe page's decoding, shipped model, {d['chars']} characters with attention rows; CPU: {d['cpu']}\n")
    print("| where | characters/s | first character |\n|---|---|---|")
    for name, r in d["rows"].items():
        print(f"| {name} | {r['chars_per_s']:,.0f} | {1000 * r['first_char_s']:.0f} ms |")
    print(f"\nCUDA graph vs op by op: logits within {d['logit_rel_error_graph_vs_plain']:.1e} (600 greedy steps, "
          "4 prompts at once), "
          f"same page text: {d['same_page_text']}; four visitors at once: same texts {d['four_visitors_same_text']}, "
          f"{d['four_visitors_chars_per_s_each']:,.0f} characters/s each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per variant")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.steps < MIN_STEPS:
        parser.error(f"--steps must be at least {MIN_STEPS}: fewer are too few to tell whether a path learns")
    if not torch.cuda.is_available():
        print("no CUDA GPU here: this check needs one (README, Benchmarks, 'On a GPU')")
        return 2
    device = torch.device("cuda", 0)
    props = torch.cuda.get_device_properties(device)
    header = {"gpu": props.name, "capability": f"{props.major}.{props.minor}", "torch": torch.__version__,
              "auto_dtype": str(resolve_dtype("auto", device)).replace("torch.", ""),
              "memory_gb": round(props.total_memory / 2**30, 1)}
    print(json.dumps(header))
    rows, model, ok = [], None, True
    for name, dtype, kernel, compiled in variants(device):
        try:
            r = train(name, dtype, kernel, compiled, args.steps, device)
        except Exception as e:  # report and go on: one broken path must not hide the others
            rows.append({"variant": name, "error": f"{type(e).__name__}: {e}"[:500]})
            ok = False
            print(json.dumps(rows[-1]), flush=True)
            continue
        trained = r.pop("model")
        model = model if compiled else trained  # the reload check wants the plain module
        ok &= r["learned"]
        rows.append(r)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
    reload = check_reload(model, device) if model is not None else {"reload_ok": False}
    ok &= reload["reload_ok"] and reload.get("sampled", False)
    print(json.dumps(reload))
    decoding = check_decoding(device)
    ok &= decoding["same_logits"] and decoding["same_page_text"] and decoding["four_visitors_same_text"]
    print(f"\n{header['gpu']} (capability {header['capability']}), torch {header['torch']}, "
          f"--dtype auto picks {header['auto_dtype']}\n")
    print("| seed preset, batch 64 x block 256 | tokens/s | ms/step | peak memory | loss fell |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | failed: {r['error'][:80]} | | | |")
        else:
            print(f"| {r['variant']} | {r['tokens_per_s']:,.0f} | {r['ms_per_step']:.1f} | "
                  f"{r['peak_mem_mb']:.0f} MB | {'yes' if r['learned'] else 'NO'} |")
    print_decoding(decoding)
    if args.out:
        Path(args.out).write_text(json.dumps({"header": header, "rows": rows, "reload": reload,
                                              "decoding": decoding}, indent=2))
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
