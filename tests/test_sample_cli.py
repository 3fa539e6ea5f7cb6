import os
import subprocess
import sys

import torch

from gpt40k.generate import stream

from conftest import ROOT
from gpt40k import load


def sample(*args):
    return subprocess.run([sys.executable, "-m", "gpt40k.sample", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_sample_streams_text_reproducibly(trained_run):
    a = sample(trained_run, "--prompt", "The emperor", "--chars", "60", "--seed", "7", "--top-k", "5",
               "--top-p", "0.9", "--temperature", "0.8")
    b = sample(trained_run / "best", "--prompt", "The emperor", "--chars", "60", "--seed", "7", "--top-k", "5",
               "--top-p", "0.9", "--temperature", "0.8")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout  # run folder = its best checkpoint; same seed = same text
    assert a.stdout.startswith("The emperor") and len(a.stdout) == len("The emperor") + 60 + 1


def test_sample_reports_unknown_characters_and_bad_arguments(trained_run):
    proc = sample(trained_run, "--prompt", "The €mperor 🙂", "--chars", "5", "--seed", "1")
    assert proc.returncode == 0 and "€" in proc.stderr and "does not know" in proc.stderr
    bad = sample(trained_run, "--top-p", "2")
    assert bad.returncode == 1 and "top_p" in bad.stderr and "Traceback" not in bad.stderr
    missing = sample(trained_run / "nope")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_sample_slide_sets_the_window_and_is_checked_first(trained_run):
    ckpt = load(trained_run)
    block, prompt = ckpt.model.config.block_size, torch.tensor([ckpt.tokenizer.encode("The emperor")])
    args = (trained_run, "--prompt", "The emperor", "--chars", 3 * block, "--temperature", 1, "--seed", 3)

    def expected(**slide):
        generator = torch.Generator().manual_seed(3)
        ids = [s.token.item() for s in stream(ckpt.model, prompt, 3 * block, temperature=1.0, generator=generator,
                                              **slide)]
        return ckpt.tokenizer.decode(prompt[0].tolist() + ids) + "\n"

    assert expected(slide=1) != expected()  # past block_size, the windows differ, and so does the text
    seed_window = sample(*args, "--slide", 1)
    assert seed_window.returncode == 0, seed_window.stderr
    assert seed_window.stdout == expected(slide=1)
    assert sample(*args).stdout == expected()
    bad = sample(*args, "--slide", block + 1)
    assert bad.returncode == 1 and bad.stdout == "" and f"between 1 and block_size ({block})" in bad.stderr
