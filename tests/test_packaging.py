"""What `pip install .` gives: every command entry point exists, and the page's static files ship."""

import importlib
import tomllib

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
    assert patterns == ["static/*"] and {p.name for p in (ROOT / "gpt40k/app/static").iterdir()} == {
        "live.html", "live.css", "live.js"}
