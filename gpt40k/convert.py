"""Turn existing character-level models into GPT-40k checkpoint folders, with identical outputs.

    python -m gpt40k.convert --from seed model.pth --corpus input.txt --out checkpoints/imported
    python -m gpt40k.convert --from nanogpt out-shakespeare-char/ckpt.pt --meta data/shakespeare_char/meta.pkl --out imported

- ``seed``: the lecture's ``GPTLanguageModel`` state_dict (``torch.save(model.state_dict())``):
  one key/query/value Linear per head, ReLU MLP. Its vocabulary is not in the file: it is
  rebuilt from the corpus it was trained on (the sorted distinct characters).
- ``nanogpt``: nanoGPT's ``ckpt.pt`` (``model_args`` and ``model``) with the ``meta.pkl`` of its
  character-level data (``stoi``/``itos``). Both are read without letting pickle run code.
"""

from __future__ import annotations

import argparse
import io
import pickle
import re
import sys
from pathlib import Path

import torch

from .checkpoint import save_checkpoint
from .errors import CheckpointError, ConvertError, GPT40kError
from .files import checked_file
from .model.config import GPTConfig
from .model.model import GPT
from .model.pretrained import MAX_WEIGHT_BYTES
from .model.tokenizer import CharTokenizer
from .training.data import read_books


def _checked_input(path: str | Path, max_bytes: int) -> Path:
    """A regular file of bounded size (never a device, pipe or folder), or a ConvertError."""
    path = Path(path)
    try:
        return checked_file(path.resolve().parent, path.resolve().name, max_bytes=max_bytes)
    except FileNotFoundError:
        raise ConvertError(f"{path} does not exist") from None
    except CheckpointError as e:
        raise ConvertError(str(e)) from None


def _load_torch(path: str | Path) -> dict:
    real = _checked_input(path, MAX_WEIGHT_BYTES)
    try:
        return torch.load(real, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]  # torch's message runs to a page
        raise ConvertError(f"{path} is not a PyTorch checkpoint that loads safely (weights only): {first}") from None


def _finish(config: GPTConfig, state: dict, source: str) -> GPT:
    """The model, built only once every weight is known to fit: names and shapes are compared with
    what ``config`` builds on the meta device (no memory), and every tensor must hold its own data
    (a stride-0 "expanded" tensor stores one number yet claims gigabytes)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in GPT(config).state_dict().items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConvertError(f"{source}: {bad[:4]} are not tensors")
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & state.keys() if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        raise ConvertError(f"{source}: the weights do not fit the model they describe (missing {missing[:4]}, "
                           f"unexpected {unexpected[:4]}, wrong shape {wrong[:4]})")
    hollow = [k for k, v in state.items() if v.numel() * v.element_size() > v.untyped_storage().nbytes()]
    if hollow:
        raise ConvertError(f"{source}: {hollow[:4]} store less data than their shape claims (expanded tensors), "
                           "so they are no trained weights")
    model = GPT(config)
    model.load_state_dict(state)
    return model.eval()


# ---- the seed (the lecture's GPTLanguageModel) -------------------------------------------
def convert_seed(state: dict, tokenizer: CharTokenizer) -> GPT:
    try:
        vocab, n_embd = state["token_embedding_table.weight"].shape
        block_size = state["position_embedding_table.weight"].shape[0]
    except KeyError:
        raise ConvertError("not a seed (lecture GPTLanguageModel) state_dict: no token_embedding_table.weight; "
                           "for nanoGPT's ckpt.pt use --from nanogpt") from None
    n_layer = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    n_head = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.0\.sa\.heads\.(\d+)\.", k)))
    if vocab != len(tokenizer):
        raise ConvertError(f"the model has {vocab} tokens but the corpus has {len(tokenizer)} distinct characters: "
                           "pass the exact text the model was trained on with --corpus")
    config = GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                       dropout=0.0, bias=True, activation="relu")
    new = {"token_embedding.weight": state["token_embedding_table.weight"],
           "position_embedding.weight": state["position_embedding_table.weight"]}
    for i in range(n_layer):
        src, dst = f"blocks.{i}.", f"blocks.{i}."
        heads = [f"{src}sa.heads.{h}." for h in range(n_head)]
        # One Linear for all heads: rows [queries of head 0..n-1 | keys ... | values ...], in head order,
        # the order in which the seed concatenates the heads' outputs.
        new[dst + "attn.qkv.weight"] = torch.cat([state[h + part + ".weight"] for part in ("query", "key", "value")
                                                  for h in heads])
        new[dst + "attn.qkv.bias"] = torch.zeros(3 * n_embd)  # the seed's heads have no bias
        for a, b in (("sa.proj", "attn.proj"), ("ffwd.net.0", "mlp.fc"), ("ffwd.net.2", "mlp.proj"),
                     ("ln1", "ln1"), ("ln2", "ln2")):
            new[f"{dst}{b}.weight"] = state[f"{src}{a}.weight"]
            new[f"{dst}{b}.bias"] = state[f"{src}{a}.bias"]
    for name in ("ln_f.weight", "ln_f.bias", "lm_head.weight", "lm_head.bias"):
        new[name] = state[name]
    return _finish(config, new, "seed state_dict")


# ---- nanoGPT ------------------------------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused."""

    def find_class(self, module, name):
        raise ConvertError(f"meta.pkl refers to {module}.{name}: only plain data (dicts, strings, numbers) is "
                           "accepted, so that loading it cannot run code")


def read_nanogpt_meta(path: str | Path) -> dict:
    raw = _checked_input(path, 16 << 20).read_bytes()
    try:
        meta = _SafeUnpickler(io.BytesIO(raw)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            RecursionError, MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path} is not a nanoGPT meta.pkl: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("itos"), dict):
        raise ConvertError(f"{path} has no itos mapping: only character-level nanoGPT models can be converted")
    return meta


def convert_nanogpt(ckpt: dict, meta: dict) -> tuple[GPT, CharTokenizer]:
    try:
        args, state = ckpt["model_args"], ckpt["model"]
    except (KeyError, TypeError):
        raise ConvertError("not a nanoGPT ckpt.pt: it has no model_args and model") from None
    itos = meta["itos"]
    chars = [itos[i] for i in range(len(itos))]
    if any(len(c) != 1 for c in chars):
        raise ConvertError("meta.pkl's vocabulary is not single characters: only character-level models convert")
    tokenizer = CharTokenizer(chars)
    # GPT-40k orders its vocabulary by character; nanoGPT ids map to ours through this permutation.
    order = torch.tensor([chars.index(c) for c in tokenizer.chars])
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}  # saved from a compiled model
    bias = bool(args.get("bias", True))
    config = GPTConfig(vocab_size=len(tokenizer), block_size=args["block_size"], n_layer=args["n_layer"],
                       n_head=args["n_head"], n_embd=args["n_embd"], dropout=0.0, bias=bias, activation="gelu")
    new = {"token_embedding.weight": state["transformer.wte.weight"][order],
           "position_embedding.weight": state["transformer.wpe.weight"],
           "lm_head.weight": state["lm_head.weight"][order]}  # tied to wte in nanoGPT; untied copies here
    names = {"ln_1": "ln1", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj", "ln_2": "ln2",
             "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}
    for i in range(config.n_layer):
        for a, b in names.items():
            new[f"blocks.{i}.{b}.weight"] = state[f"transformer.h.{i}.{a}.weight"]
            if bias:
                new[f"blocks.{i}.{b}.bias"] = state[f"transformer.h.{i}.{a}.bias"]
    new["ln_f.weight"] = state["transformer.ln_f.weight"]
    if bias:
        new["ln_f.bias"] = state["transformer.ln_f.bias"]
        new["lm_head.bias"] = torch.zeros(len(tokenizer))  # nanoGPT's head never has a bias
    return _finish(config, new, "nanoGPT ckpt.pt"), tokenizer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpt40k.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", required=True, choices=["seed", "nanogpt"], help="the source format")
    p.add_argument("checkpoint", help="seed: model.pth (a state_dict); nanogpt: ckpt.pt")
    p.add_argument("--corpus", nargs="+", help="seed: the text the model was trained on (files, folders or globs)")
    p.add_argument("--meta", help="nanogpt: the meta.pkl of its character-level data set")
    p.add_argument("--out", required=True, help="the GPT-40k checkpoint folder to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"error: --out {out} already exists and is not empty: convert into a new folder (nothing there is "
              "replaced)", file=sys.stderr)
        return 1
    try:
        if args.source == "seed":
            if not args.corpus:
                raise ConvertError("--from seed needs --corpus: the vocabulary is rebuilt from the training text")
            books, _ = read_books(args.corpus)
            tokenizer = CharTokenizer.from_text("".join(b.text for b in books))
            model = convert_seed(_load_torch(args.checkpoint), tokenizer)
        else:
            if not args.meta:
                raise ConvertError("--from nanogpt needs --meta path/to/meta.pkl (its stoi/itos vocabulary)")
            model, tokenizer = convert_nanogpt(_load_torch(args.checkpoint), read_nanogpt_meta(args.meta))
        save_checkpoint(model, args.out, tokenizer)
    except GPT40kError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as e:
        # a damaged or hand-made checkpoint: a key, a shape or a type is not what the format has
        print(f"error: {args.checkpoint} is not a complete {args.source} checkpoint "
              f"({type(e).__name__}: {str(e)[:200]}); convert the file its own code saved", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {model.num_parameters():,} parameters, {len(tokenizer)} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
