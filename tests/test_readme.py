"""The README's promises that a test can check: Spaces front matter, and flags that exist."""

import re
import shlex

import yaml

from conftest import ROOT
from gpt40k.cli import build_parser

README = (ROOT / "README.md").read_text(encoding="utf-8")


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


def test_every_train_command_in_the_readme_parses():
    commands = [line.split("#")[0].strip() for line in README.splitlines()
                if re.match(r"\s*(torchrun .*)?python train\.py|\s*torchrun", line)]
    assert len(commands) >= 5
    parser = build_parser()
    for command in commands:
        args = shlex.split(command)
        args = args[args.index("train.py") + 1:]
        parser.parse_args(args)  # exits (fails the test) on an unknown flag


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
