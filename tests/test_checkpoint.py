import json
import pickle

import pytest
import torch

from gpt40k import GPT, CharTokenizer, GPTConfig
from gpt40k.checkpoint import CheckpointError, atomic_folder, find_checkpoint, load_local, load_training_state


def saved(tmp_path):
    torch.manual_seed(0)
    tok = CharTokenizer.from_text("abcdefg \n")
    model = GPT(GPTConfig(vocab_size=len(tok), block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0))
    folder = model.save_pretrained(tmp_path / "ckpt", tokenizer=tok)
    return model, tok, folder


def test_save_and_load_round_trip(tmp_path):
    model, tok, folder = saved(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    loaded = GPT.from_pretrained(folder)
    again = CharTokenizer.from_pretrained(folder)
    idx = torch.tensor([tok.encode("abc")])
    torch.testing.assert_close(loaded(idx).logits, model.eval()(idx).logits)
    assert loaded.config == model.config and again.chars == tok.chars
    assert json.loads((folder / "config.json").read_text())["model_type"] == "gpt40k"


def test_run_folder_means_its_best_checkpoint(tmp_path):
    _, _, folder = saved(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    folder.rename(run / "best")
    assert find_checkpoint(run) == run / "best"
    with pytest.raises(CheckpointError, match="holds no GPT-40k checkpoint"):
        find_checkpoint(tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "model.safetensors").unlink(), "incomplete"),
    (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 50), "corrupt"),
    (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-40]), "corrupt"),
    (lambda f: (f / "tokenizer.json").unlink(), "no tokenizer.json"),
    (lambda f: (f / "config.json").write_text("{"), "not a valid GPT-40k config"),
    (lambda f: (f / "tokenizer.json").write_text(json.dumps({"type": "char", "vocab": ["a", "b"]})),
     "do not belong together"),
])
def test_damaged_checkpoints_give_clear_errors(tmp_path, damage, message):
    _, _, folder = saved(tmp_path)
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        load_local(folder)


def test_weights_that_do_not_fit_the_config(tmp_path):
    _, _, folder = saved(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["n_embd"] = 16
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match config.json"):
        load_local(folder)


def test_training_state_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "training_state.pt").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError, match="corrupt or not a GPT-40k training state"):
        load_training_state(tmp_path)
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        load_training_state(tmp_path / "nowhere")


def test_atomic_folder_keeps_the_old_checkpoint_when_writing_fails(tmp_path):
    dest = tmp_path / "latest"
    with atomic_folder(dest) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(dest) as tmp:
            (tmp / "a").write_text("half-written")
            raise RuntimeError("disk full")
    assert (dest / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]  # no temp folder left behind
    with atomic_folder(dest) as tmp:
        (tmp / "a").write_text("new")
    assert (dest / "a").read_text() == "new"
