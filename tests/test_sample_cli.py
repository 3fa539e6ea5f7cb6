import os
import subprocess
import sys

import torch

from gpt40k.generate import stream

from conftest import ROOT
from gpt40k import load
from gpt40k.sample import main as sample_main


def sample(*args):
    """The real command, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "gpt40k.sample", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def sample_here(capsys, *args) -> tuple[int, str, str]:
    """The same main() in this process (no second torch import: seconds saved per call); an exception
    would fail the test as a traceback would. (exit code, stdout, stderr)"""
    code = sample_main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sample_streams_text_reproducibly(trained_run):
    a = sample(trained_run, "--prompt", "The emperor", "--chars", "60", "--seed", "7", "--top-k", "5",
               "--top-p", "0.9", "--temperature", "0.8")
    b = sample(trained_run / "best", "--prompt", "The emperor", "--chars", "60", "--seed", "7", "--top-k", "5",
               "--top-p", "0.9", "--temperature", "0.8")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout  # run folder = its best checkpoint; same seed = same text
    assert a.stdout.startswith("The emperor") and len(a.stdout) == len("The emperor") + 60 + 1


def test_sample_reports_unknown_characters_and_bad_arguments(trained_run, capsys):
    code, _, err = sample_here(capsys, trained_run, "--prompt", "The €mperor 🙂", "--chars", "5", "--seed", "1")
    assert code == 0 and "€" in err and "does not know" in err
    code, _, err = sample_here(capsys, trained_run, "--top-p", "2")
    assert code == 1 and "top_p" in err
    code, _, err = sample_here(capsys, trained_run / "nope")
    assert code == 1 and err.startswith("error:")


def test_sample_slide_sets_the_window_and_is_checked_first(trained_run, capsys):
    ckpt = load(trained_run)
    block, prompt = ckpt.model.config.block_size, torch.tensor([ckpt.tokenizer.encode("The emperor")])
    args = (trained_run, "--prompt", "The emperor", "--chars", 3 * block, "--temperature", 1, "--seed", 3)

    def expected(**slide):
        generator = torch.Generator().manual_seed(3)
        ids = [s.token.item() for s in stream(ckpt.model, prompt, 3 * block, temperature=1.0, generator=generator,
                                              **slide)]
        return ckpt.tokenizer.decode(prompt[0].tolist() + ids) + "\n"

    assert expected(slide=1) != expected()  # past block_size, the windows differ, and so does the text
    code, out, err = sample_here(capsys, *args, "--slide", 1)
    assert code == 0, err
    assert out == expected(slide=1)
    assert sample_here(capsys, *args)[1] == expected()
    code, out, err = sample_here(capsys, *args, "--slide", block + 1)
    assert code == 1 and out == "" and f"between 1 and block_size ({block})" in err
