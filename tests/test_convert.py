import pickle
import subprocess
import sys
import os

import pytest
import torch

from bench.seed_model import GPTLanguageModel
from conftest import ROOT
from gpt40k import GPT, CharTokenizer
from gpt40k.convert import ConvertError, convert_nanogpt, main, read_nanogpt_meta
from nanogpt_reference import NanoGPT

TEXT = "In the grim darkness of the far future, there is only war.\nThe Emperor protects!\n"


def test_seed_state_dict_converts_with_identical_logits(tmp_path):
    (tmp_path / "input.txt").write_text(TEXT, encoding="utf-8")
    chars = sorted(set(TEXT))
    torch.manual_seed(0)
    seed = GPTLanguageModel(len(chars), n_embd=24, n_head=3, n_layer=2, block_size=16, dropout=0.0).eval()
    for p in seed.parameters():  # random, non-zero everywhere (biases included)
        torch.nn.init.normal_(p, std=0.3)
    torch.save(seed.state_dict(), tmp_path / "model.pth")  # the lecture's way of saving
    assert main(["--from", "seed", str(tmp_path / "model.pth"), "--corpus", str(tmp_path / "input.txt"),
                 "--out", str(tmp_path / "out")]) == 0
    model = GPT.from_pretrained(tmp_path / "out")
    tok = CharTokenizer.from_pretrained(tmp_path / "out")
    assert tok.chars == chars and model.config.activation == "relu"
    idx = torch.tensor([tok.encode(TEXT[:16]), tok.encode(TEXT[16:32])])
    with torch.no_grad():
        torch.testing.assert_close(model(idx).logits, seed(idx)[0], atol=1e-5, rtol=1e-5)


def test_seed_with_the_wrong_corpus_is_refused(tmp_path):
    (tmp_path / "input.txt").write_text("abc", encoding="utf-8")
    seed = GPTLanguageModel(5, n_embd=8, n_head=2, n_layer=1, block_size=4, dropout=0.0)
    torch.save(seed.state_dict(), tmp_path / "model.pth")
    args = ["--from", "seed", str(tmp_path / "model.pth"), "--out", str(tmp_path / "out")]
    assert main([*args, "--corpus", str(tmp_path / "input.txt")]) == 1
    assert main(args) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bias", [True, False])
def test_nanogpt_checkpoint_converts_with_identical_logits(tmp_path, bias):
    chars = list("zyx abc\n!")  # deliberately not sorted: ids must be permuted
    torch.manual_seed(1)
    nano = NanoGPT(len(chars), block_size=16, n_layer=2, n_head=2, n_embd=16, bias=bias).eval()
    model_args = dict(n_layer=2, n_head=2, n_embd=16, block_size=16, bias=bias, vocab_size=len(chars), dropout=0.0)
    state = {f"_orig_mod.{k}": v for k, v in nano.state_dict().items()}  # as saved after torch.compile
    torch.save({"model": state, "model_args": model_args, "iter_num": 5000, "best_val_loss": torch.tensor(1.47),
                "config": {"dataset": "shakespeare_char"}}, tmp_path / "ckpt.pt")
    with open(tmp_path / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                     "stoi": {c: i for i, c in enumerate(chars)}}, f)
    assert main(["--from", "nanogpt", str(tmp_path / "ckpt.pt"), "--meta", str(tmp_path / "meta.pkl"),
                 "--out", str(tmp_path / "out")]) == 0
    model = GPT.from_pretrained(tmp_path / "out")
    tok = CharTokenizer.from_pretrained(tmp_path / "out")
    text = "abc zyx!\nxa"
    nano_ids = torch.tensor([[chars.index(c) for c in text]])
    ours = model(torch.tensor([tok.encode(text)])).logits
    with torch.no_grad():
        theirs = nano(nano_ids)
    # same distribution over characters: reorder nanoGPT's columns into our vocabulary order
    torch.testing.assert_close(ours, theirs[..., [chars.index(c) for c in tok.chars]], atol=1e-5, rtol=1e-5)


def test_meta_pkl_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(tmp_path / "meta.pkl", "wb") as f:
        pickle.dump({"itos": {0: "a"}, "x": Evil()}, f)
    with pytest.raises(ConvertError, match="only plain data"):
        read_nanogpt_meta(tmp_path / "meta.pkl")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ConvertError, match="no model_args"):
        convert_nanogpt({"weights": 1}, {"itos": {0: "a"}})


def test_convert_cli_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gpt40k.convert", "--from", "nanogpt", str(tmp_path / "nope.pt"),
                           "--meta", "x", "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
