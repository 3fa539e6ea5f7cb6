import json
import pickle

import numpy as np
import pytest
import torch

from gpt40k import GPT, CharTokenizer, GPTConfig
from gpt40k.checkpoint import CheckpointError, load, load_training_state
from gpt40k.files import atomic_folder
from gpt40k.hub.client import find_checkpoint


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
        load(folder)


def test_weights_that_do_not_fit_the_config(tmp_path):
    _, _, folder = saved(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["n_embd"] = 16
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match config.json"):
        load(folder)


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


class Killed(BaseException):
    """Stands for a kill -9 between two file-system steps of a save."""


def _versions():
    from gpt40k import GPT, CharTokenizer, GPTConfig

    tok = CharTokenizer("abcdef")
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(GPT(GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.0)))
    return models, tok


def _kill_at(monkeypatch, step: int | None):
    """Make the step-th file-system operation of atomic_folder (rename or remove) kill the process."""
    import gpt40k.files as ck

    count = {"n": 0}
    real_rename, real_remove = ck._rename, ck._remove

    def counted(real):
        def op(*args):
            count["n"] += 1
            if step is not None and count["n"] == step:
                raise Killed
            return real(*args)
        return op

    monkeypatch.setattr(ck, "_rename", counted(real_rename))
    monkeypatch.setattr(ck, "_remove", counted(real_remove))
    return count


def _loaded_version(run, models) -> int:
    from gpt40k.checkpoint import load
    from gpt40k.hub.client import find_checkpoint

    model = load(find_checkpoint(run)).model  # how the app and --resume find a run's checkpoint
    for i, m in enumerate(models):
        if all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), m.state_dict().values())):
            return i
    raise AssertionError("the checkpoint on disk matches no version that was saved")


def test_a_kill_at_any_step_of_two_saves_in_a_row_never_loses_the_checkpoint(tmp_path, monkeypatch):
    """Every pair of kill points (one in a save, one in the save after it): a complete checkpoint
    is always found, and it is the newest one that was completely written."""
    from gpt40k.checkpoint import save_checkpoint

    models, tok = _versions()
    steps = _kill_at(monkeypatch, None)
    save_checkpoint(models[0], tmp_path / "probe" / "latest", tok)
    save_checkpoint(models[1], tmp_path / "probe" / "latest", tok)
    ops = steps["n"] // 2 + 2  # operations in one save (a few more: the first save of a pair does fewer)
    for first in range(1, ops + 1):
        for second in range(1, ops + 2):
            run = tmp_path / f"run-{first}-{second}"
            monkeypatch.undo()
            save_checkpoint(models[0], run / "latest", tok)
            _kill_at(monkeypatch, first)
            try:
                save_checkpoint(models[1], run / "latest", tok)
            except Killed:
                pass
            assert _loaded_version(run, models) in (0, 1)
            monkeypatch.undo()
            _kill_at(monkeypatch, second)
            try:
                save_checkpoint(models[2], run / "latest", tok)
                assert _loaded_version(run, models) == 2
            except Killed:
                assert _loaded_version(run, models) in (0, 1, 2)
            monkeypatch.undo()
            save_checkpoint(models[2], run / "latest", tok)  # and the next clean save tidies up
            assert _loaded_version(run, models) == 2
            assert sorted(p.name for p in run.iterdir()) == ["latest"]


def test_save_pretrained_and_from_pretrained_round_trip_alone_and_together(tmp_path):
    from gpt40k import GPT, CharTokenizer, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=1, n_embd=8))
    model.save_pretrained(tmp_path / "model-only")  # no tokenizer: the model still loads
    back = GPT.from_pretrained(tmp_path / "model-only")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    tok = CharTokenizer("abcdef")
    assert tok.save_pretrained(tmp_path / "new" / "tok").is_dir()  # a folder is made, the file goes in it
    assert (tmp_path / "new/tok/tokenizer.json").is_file()
    assert CharTokenizer.from_pretrained(tmp_path / "new/tok").chars == tok.chars
    model.save_pretrained(tmp_path / "both", tokenizer=tok)
    assert GPT.from_pretrained(tmp_path / "both").config == model.config
    assert CharTokenizer.from_pretrained(tmp_path / "both").chars == tok.chars
    tok.save_pretrained(tmp_path / "in-turn")  # one after the other: neither removes the other's file
    model.save_pretrained(tmp_path / "in-turn")
    assert sorted(p.name for p in (tmp_path / "in-turn").iterdir()) == ["config.json", "model.safetensors",
                                                                        "tokenizer.json"]


def test_a_mistyped_local_path_is_reported_as_one(tmp_path, monkeypatch):
    from gpt40k import GPT
    from gpt40k.hub.client import HubError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="runs/mine is no folder here"):
        GPT.from_pretrained("runs/mine")


def test_load_gives_model_tokenizer_and_folder_and_says_what_is_missing(tmp_path):
    from gpt40k import GPT, CharTokenizer, GPTConfig, load

    model = GPT(GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=1, n_embd=8))
    model.save_pretrained(tmp_path / "run" / "best", tokenizer=CharTokenizer("abcdef"))
    ckpt = load(tmp_path / "run")  # a run folder: its best/
    assert ckpt.folder == tmp_path / "run" / "best" and ckpt.tokenizer.chars == list("abcdef")
    assert ckpt.model.config == model.config and not ckpt.model.training
    model.save_pretrained(tmp_path / "model-only")
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        load(tmp_path / "model-only")  # the model alone loads with GPT.from_pretrained, not as a pair
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nowhere" / "deeper")


def test_a_vocabulary_over_256_characters_takes_the_uint16_path(tmp_path):
    """Ids above 255 need two bytes: encoding, the corpus cache, batches, model and checkpoint."""
    from gpt40k import GPT, GPTConfig, load
    from gpt40k.training.data import get_batch, prepare_corpus

    chars = [chr(0x400 + i) for i in range(300)]  # 300 Cyrillic-and-beyond characters
    text = "".join(chars[(i * 7) % 300] for i in range(6000))
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    data = prepare_corpus(str(tmp_path / "book.txt"), tmp_path / "cache")
    assert len(data.tokenizer) == 300 and data.train.dtype == np.uint16
    again = prepare_corpus(str(tmp_path / "book.txt"), tmp_path / "cache")  # from the memory-mapped cache
    assert np.array_equal(np.asarray(again.train), np.asarray(data.train))
    x, y = get_batch(data.train, 4, 16, torch.Generator().manual_seed(0))
    assert x.max() > 255 and torch.equal(x[:, 1:], y[:, :-1])
    assert data.tokenizer.decode(x[0].tolist()) in text
    model = GPT(GPTConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16))
    assert model(x, y).loss.isfinite()
    model.save_pretrained(tmp_path / "ckpt", tokenizer=data.tokenizer)
    assert load(tmp_path / "ckpt").tokenizer.chars == chars
