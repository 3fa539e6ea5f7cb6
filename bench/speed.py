"""Speed of GPT-40k against the seed, measured in one run on one machine.

    python bench/speed.py [--train-steps 8] [--skip-train]

Prints markdown tables: corpus encoding time; training tokens/s at the `seed` preset
(batch 64 x block 256) for the seed re-implementation (bench/seed_model.py, fp32, one module
per head) and GPT-40k in several settings; generation chars/s at 500 and 2000 characters.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.seed_model import GPTLanguageModel  # noqa: E402
from gpt40k import GPT  # noqa: E402
from gpt40k.config import PRESETS, build_config  # noqa: E402
from gpt40k.data import read_books  # noqa: E402
from gpt40k.generation import stream  # noqa: E402
from gpt40k.runtime import autocast, cpu_features, cpu_supports_bf16, describe_hardware, resolve_dtype  # noqa: E402
from gpt40k.tokenizer import CharTokenizer  # noqa: E402
from gpt40k.trainer import make_optimizer  # noqa: E402

SEED = PRESETS["seed"]
VOCAB = 97  # the original 40k corpus


def machine() -> str:
    cpu = torch.device("cpu")
    return (f"{describe_hardware(cpu)}, torch {torch.__version__}; CPU flags: {', '.join(cpu_features()) or 'unknown'}; "
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


def train_tokens_per_s(model, steps: int, dtype: torch.dtype, optimizer) -> float:
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

    for _ in range(2):  # warm-up: allocator, kernels
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * B * T / (time.perf_counter() - start)


def bench_training(steps: int) -> list[str]:
    rows = []
    torch.manual_seed(0)
    seed = seed_model()
    base = train_tokens_per_s(seed, steps, torch.float32, torch.optim.AdamW(seed.parameters(), lr=3e-4))
    rows.append(f"| seed (one module per head, fp32) | {base:,.0f} | 1.00x |")
    print(rows[-1], flush=True)
    variants = [("GPT-40k, fp32, --attention math (the exact reference)", torch.float32, "math"),
                ("GPT-40k, fp32, --attention auto (cpu_kernels; the default without bf16)", torch.float32, "auto"),
                ("GPT-40k, bf16 autocast, --attention math", torch.bfloat16, "math"),
                ("GPT-40k, bf16 autocast, --attention auto (the default with bf16)", torch.bfloat16, "auto")]
    if not cpu_supports_bf16():
        variants = variants[:2]
    for name, dtype, kernel in variants:
        torch.manual_seed(0)
        model = gpt40k_model()
        model.set_attention_kernel(kernel)
        cfg = build_config("seed", {"data": ["-"]})
        tps = train_tokens_per_s(model, steps, dtype, make_optimizer(model, cfg, torch.device("cpu")))
        rows.append(f"| {name} | {tps:,.0f} | {tps / base:.2f}x |")
        print(rows[-1], flush=True)
    return rows


@torch.no_grad()
def chars_per_s(fn, n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def bench_generation(lengths=(500, 2000)) -> list[str]:
    torch.manual_seed(0)
    seed = seed_model().eval()
    model = gpt40k_model().eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    runs = {
        "seed (full recompute per character)": lambda n: seed.generate(prompt, n),
        "GPT-40k, KV cache (default slide)": lambda n: list(stream(model, prompt, n)),
        "GPT-40k, KV cache + attention capture": lambda n: list(stream(model, prompt, n, return_attention=True)),
        "GPT-40k, KV cache, slide=1 (exactly the seed's window)": lambda n: list(stream(model, prompt, n, slide=1)),
    }
    rows, base = [], {}
    for name, fn in runs.items():
        speeds = [chars_per_s(fn, n) for n in lengths]
        if not base:
            base = dict(zip(lengths, speeds))
        cells = " | ".join(f"{s:,.0f} ({s / base[n]:.1f}x)" for n, s in zip(lengths, speeds))
        rows.append(f"| {name} | {cells} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=8, help="timed training steps per variant")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared/corpus/grimdark"))
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    if Path(args.corpus).exists():
        print("| corpus | time |\n|---|---|\n" + time_encoding(Path(args.corpus)) + "\n")
    if not args.skip_train:
        print("| training at the seed preset (batch 64 x block 256) | tokens/s | vs seed |\n|---|---|---|")
        bench_training(args.train_steps)
        print()
    print("| generation, chars/s | 500 chars | 2000 chars |\n|---|---|---|")
    bench_generation()


if __name__ == "__main__":
    main()
