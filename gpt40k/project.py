"""Where the project's own files are: app.py, requirements.txt, README.md and the shipped checkpoints.

In a clone (or an editable install) they sit beside the ``gpt40k`` package, and on a Space beside
app.py. A wheel installs them under ``<prefix>/share/gpt40k`` (pyproject.toml's data-files), which
is found through the installed distribution's record of its files, whatever the install scheme.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent
# The checkpoints this project ships, in the page's menu order (the first is the default). A Space
# gets these and no others, whatever else a user keeps in checkpoints/.
SHIPPED_MODELS = ("grimfuture",)
SPACE_FILES = ("app.py", "requirements.txt", ".gitattributes")  # plus README.md's front matter
DATA_DIR = "share/gpt40k"


def default_checkpoint() -> Path:
    """The shipped checkpoint the page shows by default (benchmarks and tests read it too)."""
    return checkpoints_dir() / SHIPPED_MODELS[0]


@functools.cache
def project_root() -> Path | None:
    """The folder holding app.py, requirements.txt and checkpoints/; None where none is installed."""
    if (SOURCE_ROOT / "app.py").is_file() and (SOURCE_ROOT / "requirements.txt").is_file():
        return SOURCE_ROOT
    try:
        dist = importlib.metadata.distribution("gpt40k")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if file.as_posix().endswith(f"{DATA_DIR}/app.py"):
            return Path(dist.locate_file(file)).resolve().parent
    return None


def checkpoints_dir() -> Path:
    """Where the shipped checkpoints are (a folder that may not exist)."""
    root = project_root()
    return (root or SOURCE_ROOT) / "checkpoints"
