"""What `pip install .` gives: every command entry point exists, and the page's static files ship."""

import importlib
import tomllib
from pathlib import PurePosixPath

from conftest import ROOT


def test_every_command_entry_point_is_a_callable():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"gpt40k-train", "gpt40k-sample", "gpt40k-app", "gpt40k-space"} <= set(scripts)
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_the_live_view_files_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["packages"]["find"]["include"] == ["gpt40k*"]
    patterns = config["package-data"]["gpt40k.app"]
    shipped = {p.relative_to(ROOT / "gpt40k/app").as_posix() for p in (ROOT / "gpt40k/app/static").rglob("*")
               if p.is_file()}
    matched = {f for f in shipped if any(PurePosixPath(f).match(pattern) for pattern in patterns)}
    assert patterns == ["static/*", "static/live/*"] and matched == shipped  # every file of the view ships
    assert {"static/live.html", "static/live.css", "static/live/main.js", "static/live/protocol.js"} <= shipped


def requirement_lines(name: str) -> list[str]:
    lines = [ln.split("#")[0].strip() for ln in (ROOT / name).read_text().splitlines()]
    return [ln for ln in lines if ln]


def test_requirements_txt_stands_alone_and_agrees_with_the_package():
    """Spaces install requirements.txt mounted alone: no `-r`; the same pins as pyproject and requirements-train."""
    space = requirement_lines("requirements.txt")
    train = requirement_lines("requirements-train.txt")
    assert not any(ln.startswith("-") for ln in space)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert train == project["dependencies"]
    assert space == train + project["optional-dependencies"]["app"]


def test_the_wheel_carries_the_space_files_and_every_shipped_checkpoint_file():
    from gpt40k.project import SHIPPED_MODELS, SPACE_FILES

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert set(data["share/gpt40k"]) == {*SPACE_FILES, "README.md"}
    listed = set()
    for target, patterns in data.items():
        for pattern in patterns:
            listed |= {p for p in ROOT.glob(pattern) if p.is_file()}
            assert all(target == str(PurePosixPath("share/gpt40k") / p.parent.relative_to(ROOT).as_posix())
                       for p in ROOT.glob(pattern)), pattern
    shipped = {p for name in SHIPPED_MODELS for p in (ROOT / "checkpoints" / name).rglob("*") if p.is_file()}
    assert shipped and shipped <= listed
    assert {p.name for p in (ROOT / "checkpoints").iterdir()} == set(SHIPPED_MODELS)  # nothing unshipped committed
