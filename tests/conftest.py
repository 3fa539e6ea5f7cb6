import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("the emperor protects and in the grim darkness of the far future there is only war "
         "brother captain iron halls burn with holy fire while the guard holds the line").split()


def make_text(n_lines: int = 400, seed: int = 0) -> str:
    """Learnable pseudo-prose: random lines of a small vocabulary of words."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
             for _ in range(n_lines)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def books(tmp_path) -> Path:
    """A folder of two small books."""
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "01_first.txt").write_text(make_text(300, seed=1), encoding="utf-8")
    (folder / "02_second.txt").write_text(make_text(300, seed=2), encoding="utf-8")
    return folder


def tiny_args(books: Path, out: Path, **overrides) -> list[str]:
    """train.py arguments for a run of a few seconds."""
    args = ["--data", str(books), "--preset", "tiny", "--out", str(out), "--sample-chars", "0",
            "--dtype", "float32"]
    for k, v in overrides.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One tiny run, trained once for the tests that only read a checkpoint."""
    from gpt40k.cli import train_main

    base = tmp_path_factory.mktemp("trained")
    folder = base / "books"
    folder.mkdir()
    (folder / "book.txt").write_text(make_text(600, seed=3), encoding="utf-8")
    out = base / "run"
    assert train_main(tiny_args(folder, out, max_iters=150)) == 0
    return out
