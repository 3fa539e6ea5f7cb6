"""The model card (README.md of a checkpoint folder), built with huggingface_hub's ModelCard."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, load
from ..files import (
    ARGS_FILE,
    CARD_FILE,
    CONFIG_FILE,
    CORPUS_FILE,
    CURVE_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    atomic_file,
    read_checked_json,
    write_text,
)
from ..generate.sampling import stream
from ..training.plotting import read_metrics

SAMPLE_PROMPTS = ["\n", "The Emperor"]
TAGS = ["character-level", "gpt", "text-generation", "pytorch", "gpt40k"]


def _read_json(path: Path) -> dict | None:
    try:
        data = read_checked_json(path.parent, path.name)
    except (OSError, ValueError):  # missing, damaged or refused (CheckpointError is a ValueError)
        return None
    return data if isinstance(data, dict) else None


def _samples(ckpt: Checkpoint, n_chars: int = 300) -> list[tuple[str, str]]:
    model, tok = ckpt.model, ckpt.tokenizer
    out = []
    for prompt in SAMPLE_PROMPTS:
        ids = tok.encode_prompt(prompt).ids
        gen = torch.Generator().manual_seed(0)
        new = [int(s.token[0]) for s in stream(model, ids, n_chars, temperature=0.8, generator=gen)]
        out.append((tok.decode(ids), tok.decode(new)))
    return out


def _config_table(config: dict, n_params: int) -> str:
    rows = [("parameters", f"{n_params:,}")] + [(k, str(v)) for k, v in config.items() if k != "model_type"]
    return "| setting | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _corpus_section(corpus: dict | None) -> str:
    if not corpus:
        return "The training corpus was not recorded with this checkpoint."
    lines = ["| file | characters | train | val |", "|---|---|---|---|"]
    lines += [f"| {b['name']} | {b['chars']:,} | {b['train']:,} | {b['val']:,} |" for b in corpus["books"]]
    lines.append(f"| **total** ({corpus['files']} files) | {corpus['characters']:,} | {corpus['train_tokens']:,} "
                 f"| {corpus['val_tokens']:,} |")
    text = "\n".join(lines) + f"\n\nVocabulary: {corpus['vocab_size']} distinct characters."
    if corpus.get("dropped_chars"):
        dropped = corpus["dropped_chars"]
        text += (f" {len(dropped)} rarer characters ({sum(dropped.values()):,} occurrences) were left out "
                 "with `--min-char-count`.")
    return text


def _results_section(metrics: list[dict], summary: dict | None) -> str:
    if not metrics:
        return "No evaluation was recorded."
    best = min(metrics, key=lambda m: m["val_loss"])
    last = metrics[-1]
    lines = [f"- **best val loss: {best['val_loss']:.4f}** nats/char = {best['val_loss'] / math.log(2):.3f} "
             f"bits/char (step {best['step']:,}; this checkpoint)",
             f"- final val loss: {last['val_loss']:.4f} ({last['val_loss'] / math.log(2):.3f} bits/char) "
             f"at step {last['step']:,}, train loss {last['train_loss']:.4f}"]
    if summary:
        lines.append(f"- training: {summary['steps']:,} steps, {summary['tokens']:,} tokens, "
                     f"{summary['elapsed_s'] / 60:.1f} min on {summary['hardware']} ({summary['dtype']}); "
                     f"ended by: {summary['stop_reason']}")
    return "\n".join(lines)


def build_card(checkpoint: str | Path, run_dir: str | Path | None = None, repo_id: str | None = None,
               title: str | None = None, note: str | None = None, description: str | None = None):
    """A ModelCard for ``checkpoint``; ``run_dir`` adds the corpus, metrics and loss curve; ``note``
    (markdown) is added as a section of its own; ``description``, one line on the model, goes into
    the front matter (the page shows it on the Write tab)."""
    from huggingface_hub import ModelCard, ModelCardData

    checkpoint = Path(checkpoint)
    run_dir = Path(run_dir) if run_dir else None
    config = read_checked_json(checkpoint, CONFIG_FILE)
    ckpt = load(checkpoint)  # once: the parameter count and the samples
    corpus = _read_json(run_dir / CORPUS_FILE) if run_dir else None
    summary = _read_json(run_dir / SUMMARY_FILE) if run_dir else None
    metrics = read_metrics(run_dir / METRICS_FILE) if run_dir else []
    args = _read_json(run_dir / ARGS_FILE) if run_dir else None
    name = title or (repo_id.split("/")[-1] if repo_id else checkpoint.resolve().parent.name)
    data = ModelCardData(language="en", license="mit", library_name="gpt40k", tags=TAGS,
                         pipeline_tag="text-generation", model_name=name)
    if metrics:
        data.best_val_loss = round(min(m["val_loss"] for m in metrics), 4)
    if description:
        data.description = description
    samples = "\n\n".join(f"Prompt {p!r}:\n\n```text\n{p}{s}\n```" for p, s in _samples(ckpt))
    repo = repo_id or "path/to/this/folder"
    curve = f"![Training and validation loss]({CURVE_FILE})\n\n" if (checkpoint / CURVE_FILE).exists() or (
        run_dir and (run_dir / CURVE_FILE).exists()) else ""
    note_text = f"{note.strip()}\n\n" if note else ""
    local_keys = ("data", "out", "cache_dir")  # paths of the training machine: meaningless elsewhere
    args_text = f"`{json.dumps({k: v for k, v in args.items() if k not in local_keys})}`" if args else "not recorded"
    body = f"""
# {name}

A character-level GPT trained with GPT-40k: a decoder-only
transformer in the spirit of Karpathy's "Let's build GPT", that reads and writes one character at a time.

## Model

{_config_table(config, ckpt.model.num_parameters())}

## Training data

{_corpus_section(corpus)}

## Results

{_results_section(metrics, summary)}

{curve}{note_text}Training arguments: {args_text}.

## Samples

Temperature 0.8, seed 0:

{samples}

## How to use

In the browser, with the GPT-40k app:

```bash
python app.py --model {repo}
```

From the command line:

```bash
python -m gpt40k.sample {repo} --prompt "The Emperor" --chars 500 --temperature 0.8
```

In Python:

```python
import torch
from gpt40k import GPT, CharTokenizer

model = GPT.from_pretrained("{repo}")
tok = CharTokenizer.from_pretrained("{repo}")
out = model.generate(torch.tensor([tok.encode("The Emperor")]), 200, temperature=0.8)
print(tok.decode(out[0].tolist()))
```

## Limitations

A model of this size learns spelling, punctuation, names and the rhythm of its books, not facts or
coherent plots. It reproduces the style (and the biases) of the texts it was trained on.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_card(checkpoint: str | Path, run_dir: str | Path | None = None, repo_id: str | None = None,
               title: str | None = None, note: str | None = None, description: str | None = None) -> Path:
    """Write README.md (and a copy of the loss curve) into the checkpoint folder."""
    checkpoint = Path(checkpoint)
    if run_dir and (Path(run_dir) / CURVE_FILE).exists():
        with atomic_file(checkpoint / CURVE_FILE) as tmp:
            shutil.copyfile(Path(run_dir) / CURVE_FILE, tmp)
    card = build_card(checkpoint, run_dir, repo_id, title, note, description)
    path = checkpoint / CARD_FILE
    write_text(path, str(card))
    return path
