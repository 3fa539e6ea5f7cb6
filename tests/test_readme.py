"""The README's and the docs' promises that a test can check: Spaces front matter, commands whose
flags exist, files that exist, and a README that stays short."""

import re
import shlex

import pytest
import yaml

from conftest import ROOT
from gpt40k.train import build_parser

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
        for p in [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]}


def test_spaces_front_matter_parses_and_matches_the_installed_gradio():
    import gradio

    match = re.match(r"\A---\n(.*?)\n---\n", README, re.S)
    assert match, "README.md must start with the Spaces YAML front matter"
    meta = yaml.safe_load(match.group(1))
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).exists()
    assert meta["sdk_version"] == gradio.__version__
    assert re.search(rf"^gradio(\[\w+\])?=={re.escape(meta['sdk_version'])}\b", (ROOT / "requirements.txt").read_text(),
                     re.M)
    assert meta["python_version"] in ("3.10", "3.12")  # what both CPU and ZeroGPU Spaces offer
    for key in ("title", "emoji", "colorFrom", "colorTo", "license"):
        assert meta.get(key), key
    assert isinstance(meta["models"], list)


def commands(text: str, start: str) -> list[list[str]]:
    """Each command line of ``text`` that runs ``start``, as words: lines of code blocks, and inline code
    that gives arguments (a bare `python -m gpt40k.push` in a sentence names the command)."""
    found = []
    for line in text.splitlines():
        for code, inline in [(line.strip(), False)] + [(c, True) for c in re.findall(r"`([^`]+)`", line)]:
            code = code.split(" # ")[0].split("  #")[0].strip()
            if re.match(rf"(torchrun [^`]*?)?{re.escape(start)}( |$)", code) and "..." not in code:
                if not (inline and code == start):
                    found.append(shlex.split(code))
    return found


def parsers():
    from gpt40k import card, convert, push, sample, space
    from gpt40k.app.serve import build_parser as app_parser

    return {"train.py": build_parser, "app.py": app_parser, "gpt40k.sample": sample.build_parser,
            "gpt40k.push": push.build_parser, "gpt40k.card": card.build_parser, "gpt40k.space": space.build_parser,
            "gpt40k.convert": convert.build_parser}


def test_every_command_in_the_readme_and_docs_parses():
    """python train.py, python app.py and python -m gpt40k.X as written: flags that exist, arguments
    where they are needed (argparse exits, failing the test, on anything else)."""
    checked = 0
    for name, text in DOCS.items():
        for script, parser in parsers().items():
            start = f"python -m {script}" if script.startswith("gpt40k.") else f"python {script}"
            for words in commands(text, start) + [w for w in commands(text, "torchrun") if script in w]:
                cut = words.index(script) + 1 if script in words else words.index("-m") + 2
                if "--help" in words:
                    with pytest.raises(SystemExit, match="0"):
                        parser().parse_args(words[cut:])
                else:
                    parser().parse_args(words[cut:])
                checked += 1
    assert checked >= 25


def test_every_file_the_readme_and_docs_name_exists():
    names = set()
    for text in DOCS.values():
        names |= set(re.findall(r"`((?:gpt40k|bench|tests|docs|notebooks|checkpoints)/[\w./-]+?)`", text))
        names |= set(re.findall(r"python ((?:bench|tests)/[\w/]+\.py)", text))
    missing = sorted(n for n in names if not (ROOT / n.rstrip("/")).exists() and "*" not in n)
    assert names and missing == []


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 250


def test_kaggle_notebook_is_valid_and_has_no_outputs():
    import json

    nb = json.loads((ROOT / "notebooks" / "train_on_kaggle.ipynb").read_text(encoding="utf-8"))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb["cells"] if c["cell_type"] == "code")
    joined = "\n".join(code)
    assert "train.py --data" in joined and "torchrun --nproc_per_node=2" in joined and "--push-to-hub" in joined
    assert '"working"' in joined and "--time-limit" in joined and 'Path("/kaggle")' in joined
    assert "-r requirements-train.txt" in joined and "gradio" not in (ROOT / "requirements-train.txt").read_text()
