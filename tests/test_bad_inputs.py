"""Bad input to every command ends in a clear message and a non-zero exit, never a traceback.
Run in-process: an exception that escapes fails the test (test_train.py proves it once as a
subprocess)."""

import json
import shutil

import pytest
import torch

from conftest import tiny_args
from gpt40k import sample
from gpt40k.train import main as train_main
from gpt40k.project import default_checkpoint

SHIPPED = default_checkpoint()


@pytest.mark.parametrize("flags, message", [
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--beta1", "2"], "--beta1 must be in [0, 1)"),
    (["--beta2", "-0.5"], "--beta2 must be in [0, 1)"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number"),
    (["--seed", str(10**30)], "--seed must be between 0 and 2**63 - 1"),
    (["--seed", "-1"], "--seed must be between 0 and 2**63 - 1"),
    (["--val-fraction", "nan"], "--val-fraction must be a finite number"),
    (["--time-limit", "inf"], "--time-limit must be a finite number"),
])
def test_bad_training_numbers(books, tmp_path, capsys, flags, message):
    assert train_main(tiny_args(books, tmp_path / "run") + flags) == 1
    assert message in capsys.readouterr().err


def test_a_one_character_corpus(tmp_path, capsys):
    (tmp_path / "one.txt").write_text("x")
    assert train_main(tiny_args(tmp_path / "one.txt", tmp_path / "run")) == 1
    assert "the corpus is too short" in capsys.readouterr().err


def test_divergence_never_writes_non_finite_weights(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, lr=1e30, eval_interval=1, max_iters=5)) == 1
    assert "training diverged" in capsys.readouterr().err
    from gpt40k.checkpoint import load

    model = load(out / "latest").model  # the step-0 checkpoint, from before the first update
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_an_edited_train_args_file(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 0
    for garbage in ("{not json", "[1, 2]", json.dumps({"n_layer": "four"}), json.dumps({"nonsense": 1})):
        (out / "latest" / "train_args.json").write_text(garbage)
        assert train_main(["--resume", str(out)]) == 1
        assert "cannot be read as this run's arguments" in capsys.readouterr().err


def test_a_damaged_corpus_cache_is_rebuilt(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=5, eval_interval=5)) == 0
    for cache in (out / "data_cache").glob("*.train.bin"):
        cache.write_bytes(cache.read_bytes()[:100])  # truncated
    assert train_main(tiny_args(books, tmp_path / "run2", max_iters=5, eval_interval=5,
                                cache_dir=out / "data_cache")) == 0


@pytest.mark.parametrize("temperature, ok", [("nan", False), ("inf", False), ("-1", False), ("1e-45", True)])
def test_sample_temperatures(capsys, temperature, ok):
    assert sample.main([str(SHIPPED), "--chars", "5", "--seed", "0", "--temperature", temperature]) == (0 if ok else 1)
    err = capsys.readouterr().err
    assert ok or "temperature must be a number >= 0" in err


@pytest.mark.parametrize("config, message", [
    (None, "a config is a JSON object"), ([1], "a config is a JSON object"),
    ({"vocab_size": 97, "block_size": 256, "n_layer": 10**6, "n_head": 6, "n_embd": 192}, "n_layer = 1000000 is over"),
    ({"vocab_size": 97, "block_size": 40000, "n_layer": 4, "n_head": 6, "n_embd": 192}, "block_size = 40000 is over"),
    ({"vocab_size": 97, "block_size": 512, "n_layer": 4, "n_head": 6, "n_embd": 192}, "does not match config.json"),
])
def test_hostile_or_mismatched_configs_are_refused_before_building(tmp_path, capsys, config, message):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copyfile(SHIPPED / name, folder / name)
    (folder / "config.json").write_text(json.dumps(config))
    assert sample.main([str(folder), "--chars", "5"]) == 1
    assert message in capsys.readouterr().err


def test_an_empty_out_and_a_nul_byte_deep_in_a_book(books, tmp_path, capsys):
    assert train_main(tiny_args(books, tmp_path / "run") + ["--out", ""]) == 1
    assert "--out must name a folder" in capsys.readouterr().err
    (books / "03_bad.txt").write_bytes(b"the emperor " * 2000 + b"\x00" + b"protects")  # past the first 8 KB
    assert train_main(tiny_args(books, tmp_path / "run")) == 1
    assert "03_bad.txt looks like a binary file" in capsys.readouterr().err


@pytest.mark.parametrize("module, writer", [("gpt40k.model.pretrained", "save_file"),  # the weights
                                            ("gpt40k.model.tokenizer", "write_text"),  # tokenizer.json
                                            ("gpt40k.checkpoint.torch", "save")])  # training_state.pt
def test_a_full_disk_while_saving_is_a_message_and_leaves_no_temporary_folder(books, tmp_path, capsys, monkeypatch,
                                                                              module, writer):
    import importlib

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    target = module.rsplit(".", 1)
    owner = importlib.import_module(target[0]).torch if target[1] == "torch" else importlib.import_module(module)
    monkeypatch.setattr(owner, writer, no_space)
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=5, eval_interval=5)) == 1
    err = capsys.readouterr().err
    assert f"cannot write a checkpoint in {out}: No space left on device. Free some disk space" in err
    assert "Traceback" not in err and not list(out.glob(".*.tmp-*"))


def test_two_trainers_on_one_run_folder(books, tmp_path, capsys):
    from gpt40k.training.trainer import TrainingError, run_lock

    out = tmp_path / "run"
    out.mkdir()
    with run_lock(out):  # as if another train.py were writing there
        assert train_main(tiny_args(books, out, max_iters=5, eval_interval=5)) == 1
        assert "another train.py is writing to" in capsys.readouterr().err
        with pytest.raises(TrainingError):
            with run_lock(out):
                pass
    assert train_main(tiny_args(books, out, max_iters=5, eval_interval=5)) == 0  # free again
