"""A run folder is the user's work: never overwritten without --resume or --overwrite, never holding
anything a run did not write, never left behind empty by a refused start (issues 22 and 23)."""

import json
import os
import stat

import pytest

from conftest import tiny_args
from gpt40k.checkpoint import load_training_state
from gpt40k.train import main as train_main
from gpt40k.training.plotting import read_metrics


def best_val(run):
    return json.loads((run / "run_summary.json").read_text())["best_val_loss"]


def test_the_same_command_twice_keeps_the_trained_model(books, tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_args(books, out, max_iters=40, eval_interval=20)
    assert train_main(args) == 0
    weights = (out / "best/model.safetensors").read_bytes()
    lines = (out / "metrics.jsonl").read_text()
    assert train_main(args) == 1  # again, as a user re-running a cell
    err = capsys.readouterr().err
    assert f"--out {out} already holds a training run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "best/model.safetensors").read_bytes() == weights
    assert (out / "metrics.jsonl").read_text() == lines


def test_overwrite_starts_again_and_leaves_no_old_snapshot(books, tmp_path):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=40, eval_interval=20, snapshot_every=20)) == 0
    assert (out / "snapshots/step-000040").is_dir()
    assert train_main([*tiny_args(books, out, max_iters=20, eval_interval=10, snapshot_every=10), "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step-000000", "step-000010", "step-000020"]
    assert [m["step"] for m in read_metrics(out / "metrics.jsonl")] == [0, 10, 20]


def test_overwrite_and_resume_together_are_refused(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 0
    assert train_main(["--resume", str(out), "--overwrite"]) == 1
    assert "give one of them" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["holiday.jpg", "best/holiday.jpg", "latest/notes.txt",
                                  "snapshots/step-000000/thesis.tex"])
def test_a_folder_holding_other_files_is_refused_and_nothing_is_deleted(books, tmp_path, capsys, path):
    out = tmp_path / "run"
    (out / path).parent.mkdir(parents=True)
    (out / path).write_text("mine")
    for flags in ([], ["--overwrite"]):
        assert train_main([*tiny_args(books, out, max_iters=10, eval_interval=10), *flags]) == 1
        err = capsys.readouterr().err
        assert "holds files that are not a training run's" in err and path in err
        assert (out / path).read_text() == "mine"
    assert not (out / "train_args.json").exists()


def test_a_foreign_metrics_file_is_refused_before_anything_is_written(books, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1, "acc": 0.5}\n')
    assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 1
    assert "already holds a training run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl"]


def test_a_torn_metrics_line_does_not_block_resume(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=20, eval_interval=10)) == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "train_lo')  # a kill mid-line
    assert train_main(["--resume", str(out), "--max-iters", "30"]) == 0
    assert "1 unreadable line(s)" in capsys.readouterr().out
    assert [m["step"] for m in read_metrics(out / "metrics.jsonl")] == [0, 10, 20, 30]


def test_a_refused_corpus_leaves_no_run_folder(tmp_path, capsys):
    books = tmp_path / "books"
    books.mkdir()
    (books / "book.txt").write_bytes("The Emperor protects.\n".encode("utf-16"))
    out = tmp_path / "runs" / "new"
    assert train_main(tiny_args(books, out)) == 1
    err = capsys.readouterr().err
    assert "is UTF-16 text" in err and "iconv -f UTF-16 -t UTF-8" in err and "binary" not in err
    assert not out.exists()


def test_the_time_limit_is_per_session(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=100000, eval_interval=100000, time_limit=0.025)) == 0  # 1.5 s
    first = load_training_state(out / "latest")["step"]
    assert "time limit reached" in capsys.readouterr().out
    assert train_main(["--resume", str(out)]) == 0  # a second session gets the whole limit again
    second = load_training_state(out / "latest")["step"]
    # counted over both sessions, the limit would stop the second after one step
    assert second - first > 1 and load_training_state(out / "latest")["elapsed_s"] > 1.5  # over one limit


def test_an_interrupt_before_the_first_evaluation_keeps_no_random_best(books, tmp_path, capsys):
    from gpt40k.train import build_parser, resolve_config
    from gpt40k.training.trainer import Trainer

    out = tmp_path / "run"
    cfg, _ = resolve_config(build_parser().parse_args(tiny_args(books, out, max_iters=100, eval_interval=50)))
    trainer = Trainer(cfg)
    assert trainer.run(until_step=5).stop_reason == "interrupted"
    trainer.close()
    assert not (out / "best").exists()
    assert "no best checkpoint yet" in capsys.readouterr().out
    for name in ("README.md", "loss_curve.png", "training_state.pt"):  # the card that README promises
        assert (out / "latest" / name).is_file(), name
    from gpt40k import load

    assert load(out).folder == out / "latest"


def test_weights_are_readable_by_others(books, tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 0
    finally:
        os.umask(old)
    for path in ("best/model.safetensors", "latest/training_state.pt", "best/config.json"):
        assert stat.S_IMODE((out / path).stat().st_mode) == 0o644, path


@pytest.mark.parametrize("state, kind", [
    ({"step": "x"}, "KeyError"), ([1, 2], "TypeError"), ({"optimizer": {"state": {}, "param_groups": []}}, "ValueError"),
])
def test_a_damaged_training_state_is_a_message(books, tmp_path, capsys, state, kind):
    import torch

    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 0
    torch.save(state, out / "latest/training_state.pt")
    assert train_main(["--resume", str(out)]) == 1
    err = capsys.readouterr().err
    assert "training_state.pt is damaged or was not written by this version" in err and "Traceback" not in err


def test_a_wrong_type_in_train_args_is_a_message(books, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(tiny_args(books, out, max_iters=10, eval_interval=10)) == 0
    for edit in ({"data": 5}, {"batch_size": "big"}, {"lr": [1]}):
        saved = json.loads((out / "latest/train_args.json").read_text())
        (out / "latest/train_args.json").write_text(json.dumps({**saved, **edit}))
        assert train_main(["--resume", str(out)]) == 1
        err = capsys.readouterr().err
        assert "cannot be read as this run's arguments" in err and "Traceback" not in err, edit


def test_resume_from_a_read_only_copy_into_another_folder(books, tmp_path):
    """Kaggle's second session: the kept output is under /kaggle/input (read-only); --out is /kaggle/working."""
    import hashlib

    kept = tmp_path / "input" / "run1"
    assert train_main(tiny_args(books, kept, max_iters=20, eval_interval=10, snapshot_every=10)) == 0
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in kept.rglob("*") if p.is_file()}
    out = tmp_path / "working" / "run1"
    assert train_main(["--resume", str(kept), "--out", str(out), "--max-iters", "30"]) == 0
    assert [m["step"] for m in read_metrics(out / "metrics.jsonl")] == [0, 10, 20, 30]  # the curve goes on
    assert (out / "snapshots/step-000010").is_dir() and (out / "best/config.json").is_file()
    assert load_training_state(out / "latest")["step"] == 30
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in kept.rglob("*") if p.is_file()} == before
