"""Speed of GPT-40k against the seed, measured in one run on one machine.

    python bench/speed.py [--train-steps 4] [--rounds 3] [--skip-train] [--profile]

Prints markdown tables: corpus encoding time; training tokens/s at the `seed` preset
(batch 64 x block 256) for the seed re-implementation (bench/seed_model.py, fp32, one module
per head; in processes of its own, as its script runs) and GPT-40k in several settings (as
train.py runs them: freed memory kept for reuse, ``device.keep_freed_memory``); generation
chars/s at 500 and 2000 characters; where a generated character's time goes on one thread (the
decode step, its matrix products, the window's jumps, sampling); then whether the CPU speed
targets are met here (fp32 training >= 1.5x the seed, bf16 >= 2.5x where the CPU has bf16;
generation with attention >= 1,000 chars/s and >= 20x the seed at 2000 characters).
``--profile`` prints instead where the time of a training step (fp32, the default kernels) and of
generating characters goes, operation by operation (torch.profiler).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.seed_model import GPTLanguageModel  # noqa: E402
from gpt40k import GPT  # noqa: E402
from gpt40k.training.config import PRESETS, build_config  # noqa: E402
from gpt40k.training.data import read_books  # noqa: E402
from gpt40k.generate.decoder import FastDecoder, one_cpu_thread  # noqa: E402
from gpt40k.generate.sampling import check_slide, draw, next_token_distribution, stream  # noqa: E402
from gpt40k.device import autocast, cpu_supports_bf16, describe_cpu, keep_freed_memory, resolve_dtype  # noqa: E402
from gpt40k.model.tokenizer import CharTokenizer  # noqa: E402
from gpt40k.training.cpu_kernels import set_attention  # noqa: E402
from gpt40k.training.trainer import make_optimizer  # noqa: E402

SEED = PRESETS["seed"]
VOCAB = 97  # the original 40k corpus
SEED_TRAINING = "seed (one module per head, fp32)"
FP32_TRAINING = "GPT-40k, fp32, --attention auto (cpu_kernels; the default without bf16)"
BF16_TRAINING = "GPT-40k, bf16 autocast, --attention auto (the default with bf16)"
SEED_GENERATION = "seed (full recompute per character)"
WITH_ATTENTION = "GPT-40k, KV cache + attention capture"


def machine() -> str:
    cpu = torch.device("cpu")
    return (f"{describe_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"--dtype auto picks {str(resolve_dtype('auto', cpu)).replace('torch.', '')}, "
            f"--attention auto picks cpu_kernels (chunked attention, byte dropout) for training on CPU")


def time_encoding(corpus: Path) -> str:
    books, _ = read_books(str(corpus))
    text = "".join(b.text for b in books)
    tok = CharTokenizer.from_text(text)
    start = time.perf_counter()
    tok.encode_array(text)
    return f"| encode {len(text):,} characters ({corpus.name}) | {time.perf_counter() - start:.3f} s |"


def seed_model() -> GPTLanguageModel:
    return GPTLanguageModel(VOCAB, SEED["n_embd"], SEED["n_head"], SEED["n_layer"], SEED["block_size"],
                            SEED["dropout"])


def gpt40k_model() -> GPT:
    return GPT(build_config("seed", {"data": ["-"]}).model_config(VOCAB))


def train_step(model, dtype: torch.dtype, optimizer):
    """One training step at the seed preset on random tokens, as a function to time."""
    model.train()
    B, T = SEED["batch_size"], SEED["block_size"]
    gen = torch.Generator().manual_seed(0)
    device = torch.device("cpu")

    def step():
        x = torch.randint(VOCAB, (B, T), generator=gen)
        y = torch.randint(VOCAB, (B, T), generator=gen)
        with autocast(device, dtype):
            out = model(x, y)
        loss = out[1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def train_tokens_per_s(model, steps: int, dtype: torch.dtype, optimizer) -> float:
    step = train_step(model, dtype, optimizer)
    for _ in range(2):  # warm-up: allocator, kernels
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * SEED["batch_size"] * SEED["block_size"] / (time.perf_counter() - start)


def seed_tokens_per_s(steps: int) -> float:
    torch.manual_seed(0)
    model = seed_model()
    return train_tokens_per_s(model, steps, torch.float32, torch.optim.AdamW(model.parameters(), lr=3e-4))


def seed_in_its_own_process(steps: int) -> float:
    """The seed's training as its own script runs it: in a fresh process, with glibc's allocator as it
    comes (this one keeps freed memory for reuse, as train.py does: device.keep_freed_memory)."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.speed import seed_tokens_per_s; " \
           f"print(seed_tokens_per_s({steps}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def bench_training(steps: int, rounds: int) -> dict[str, float]:
    """Every variant ``rounds`` times, taking turns (a shared machine's speed drifts; turns spread
    the drift over all of them); prints the median of each, with the range; returns the medians."""
    cfg = build_config("seed", {"data": ["-"]})
    variants = [(SEED_TRAINING, torch.float32, None),
                ("GPT-40k, fp32, --attention math (the exact reference)", torch.float32, "math"),
                (FP32_TRAINING, torch.float32, "auto"),
                ("GPT-40k, bf16 autocast, --attention math", torch.bfloat16, "math"),
                (BF16_TRAINING, torch.bfloat16, "auto")]
    if not cpu_supports_bf16():
        variants = variants[:3]
    steppers = []
    for _, dtype, kernel in variants[1:]:
        torch.manual_seed(0)
        model = gpt40k_model()
        set_attention(model, kernel, "cpu")  # as train.py does: cpu_kernels with auto
        steppers.append((model, dtype, make_optimizer(model, cfg, torch.device("cpu"))))
    speeds = [[] for _ in variants]
    for _ in range(rounds):
        speeds[0].append(seed_in_its_own_process(steps))
        for i, (model, dtype, optimizer) in enumerate(steppers, start=1):
            speeds[i].append(train_tokens_per_s(model, steps, dtype, optimizer))
    base = statistics.median(speeds[0])
    for (name, _, _), runs in zip(variants, speeds):
        median = statistics.median(runs)
        print(f"| {name} | {median:,.0f} ({min(runs):,.0f}-{max(runs):,.0f}) | {median / base:.2f}x |", flush=True)
    return {name: statistics.median(runs) for (name, _, _), runs in zip(variants, speeds)}


@torch.no_grad()
def chars_per_s(fn, n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def bench_generation(rounds: int, lengths=(500, 2000)) -> dict[tuple[str, int], float]:
    """Each way of generating ``rounds`` times at each length, taking turns; prints and returns the medians."""
    torch.manual_seed(0)
    seed = seed_model().eval()
    model = gpt40k_model().eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)

    def consume(steps):  # as the CLI does: read each character, keep nothing else
        for step in steps:
            int(step.token[0])

    def on_one_thread(n):  # as app.py runs it: window jumps on one thread too
        with one_cpu_thread(torch.device("cpu")):
            consume(stream(model, prompt, n, return_attention=True))

    runs = {
        SEED_GENERATION: lambda n: seed.generate(prompt, n),
        "GPT-40k, KV cache (default slide)": lambda n: consume(stream(model, prompt, n)),
        WITH_ATTENTION: lambda n: consume(stream(model, prompt, n, return_attention=True)),
        "GPT-40k, KV cache + attention capture, one thread (as the page runs it)": on_one_thread,
        "GPT-40k, KV cache, slide=1 (exactly the seed's window)": lambda n: consume(stream(model, prompt, n, slide=1)),
    }
    speeds = {(name, n): [] for name in runs for n in lengths}
    for _ in range(rounds):
        for name, fn in runs.items():
            for n in lengths:
                speeds[name, n].append(chars_per_s(fn, n))
    median = {key: statistics.median(values) for key, values in speeds.items()}
    for name in runs:
        cells = " | ".join(f"{median[name, n]:,.0f} ({median[name, n] / median[SEED_GENERATION, n]:.1f}x)"
                           for n in lengths)
        print(f"| {name} | {cells} |", flush=True)
    return median


def median_us(fn, repeats: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time of one call of ``fn``, in microseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(times)


@torch.inference_mode()
def print_character_parts() -> None:
    """Where one generated character's time goes on one thread, part by part, as generation spends it
    once the window is full: a step at half to all of block_size cached positions, a share of a jump
    and the sampling. Where a CPU misses the generation target, this says which part to work on."""
    torch.manual_seed(0)
    model = gpt40k_model().eval()
    decoder, block = FastDecoder(model), model.config.block_size
    slide = check_slide(None, block)
    cache, token = model.new_cache(1), torch.zeros(1, 1, dtype=torch.long)
    kept = torch.zeros(1, block - slide, dtype=torch.long)  # what a jump keeps of the window

    def jump():
        cache.reset()
        decoder.fill(kept, cache)

    def steps():  # every position a step takes between two jumps
        jump()
        for _ in range(slide):
            decoder.step(token, cache, return_attention=True)

    x, h = torch.zeros(1, model.config.n_embd), torch.zeros(1, 4 * model.config.n_embd)

    def products():  # the step's matrix products alone, on the same weights
        for *_, w_qkv, b_qkv, w_o, b_o, _, _, w_fc, b_fc, w_out, b_out in decoder.layers:
            torch.addmm(b_qkv, x, w_qkv), torch.addmm(b_o, x, w_o)
            torch.addmm(b_fc, x, w_fc), torch.addmm(b_out, h, w_out)
        torch.addmm(decoder.final[3], x, decoder.final[2])

    logits, generator = torch.randn(1, VOCAB), torch.Generator().manual_seed(0)

    def sample():  # as generation.stream does it, at its defaults
        int(draw(next_token_distribution(logits), generator)[0])

    with one_cpu_thread(torch.device("cpu")):
        jump_us = median_us(jump, 5)
        rows = [(f"decode step, {block - slide + 1}-{block} cached positions (generate.decoder, with attention)",
                 (median_us(steps, 2) - jump_us) / slide),
                (f"  of which its {4 * len(decoder.layers) + 1} one-row matrix products", median_us(products, 500)),
                (f"window jump: {jump_us / 1000:.1f} ms every {slide} characters", jump_us / slide),
                ("sampling (softmax, finite check, draw)", median_us(sample, 2000))]
    print("\n| a generated character, one thread, by part | us |\n|---|---|")
    for what, us in rows:
        print(f"| {what} | {us:,.0f} |")


def print_targets(training: dict[str, float], generation: dict[tuple[str, int], float]) -> None:
    """The targets of this project's CPU speed work, met or not, on this machine."""
    rows = []
    if training:
        seed = training[SEED_TRAINING]
        rows.append(("fp32 training, `--attention auto`", ">= 1.5x the seed", training[FP32_TRAINING] / seed, 1.5, "x"))
        if BF16_TRAINING in training:
            rows.append(("bf16 training, `--attention auto`", ">= 2.5x the seed", training[BF16_TRAINING] / seed, 2.5, "x"))
    rate = generation[WITH_ATTENTION, 2000]
    rows.append(("generation with attention, 2000 chars", ">= 1,000 chars/s", rate, 1000, " chars/s"))
    rows.append(("generation with attention, 2000 chars", ">= 20x the seed", rate / generation[SEED_GENERATION, 2000],
                 20, "x"))
    print("\n| target | wanted | measured | met |\n|---|---|---|---|")
    for what, wanted, value, least, unit in rows:
        shown = f"{value:,.0f}{unit}" if unit == " chars/s" else f"{value:.2f}{unit}"
        print(f"| {what} | {wanted} | {shown} | {'yes' if value >= least else '**no**'} |")


def profile(rows: int = 18) -> None:
    """The profiler's table of a fp32 training step and of 200 generated characters with attention."""
    from torch.profiler import profile as run_profiler

    torch.manual_seed(0)
    model = gpt40k_model()
    optimizer = make_optimizer(model, build_config("seed", {"data": ["-"]}), torch.device("cpu"))
    step = train_step(model, torch.float32, optimizer)
    step()  # warm-up
    with run_profiler() as prof:
        step()
        step()
    print("two training steps, fp32, seed preset:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
    model.eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    list(stream(model, prompt, 100, return_attention=True))
    with run_profiler() as prof:
        list(stream(model, prompt, 200, return_attention=True))
    print("200 generated characters with attention:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=4, help="timed training steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of measurements, the variants taking turns")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--profile", action="store_true", help="where the time goes, per operation")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared/corpus/grimfuture"))
    args = parser.parse_args()
    # As train.py does on a CPU. Not for the seed's training, timed in processes of its own as its script runs.
    kept = keep_freed_memory(torch.device("cpu"))
    print(f"machine: {machine()}; freed tensors' memory kept for reuse (gpt40k.device.keep_freed_memory): "
          f"{'yes' if kept else 'no'}\n")
    if args.profile:
        return profile()
    if Path(args.corpus).exists():
        print("| corpus | time |\n|---|---|\n" + time_encoding(Path(args.corpus)) + "\n")
    training = {}
    if not args.skip_train:
        print(f"| training at the seed preset (batch 64 x block 256) | tokens/s, median of {args.rounds} (range) "
              "| vs seed |\n|---|---|---|")
        training = bench_training(args.train_steps, args.rounds)
        print()
    print(f"| generation, chars/s, median of {args.rounds} | 500 chars | 2000 chars |\n|---|---|---|")
    generation = bench_generation(args.rounds)
    print_character_parts()
    print_targets(training, generation)


if __name__ == "__main__":
    main()
