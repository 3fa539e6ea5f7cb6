"""The demo as a Hugging Face Space: what it is made of (``stage``) and its upload (``deploy``).

A Space gets, in one commit through the Hub's upload API, exactly what it needs: app.py, the gpt40k
package, requirements.txt, the shipped checkpoints and a README whose front matter configures it.
The upload API stores binary files (weights, pictures) the way the Hub requires, which a plain
`git push` of this repository does not. The command line is ``gpt40k/space.py``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from ..errors import GPT40kError
from ..files import CARD_FILE, CHECKPOINT_FILES, CONFIG_FILE, CURVE_FILE, SNAPSHOT_INFO_FILE, SNAPSHOTS_DIR
from ..project import PACKAGE_DIR, SHIPPED_MODELS, SPACE_FILES, checkpoints_dir, project_root
from .client import HubError, _push_error, parse_repo_ref, write_api

HARDWARE = ["cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large"]
SPACE_BODY = """
# GPT-40k

A tiny character-level GPT writes one character at a time; watch each choice and what every
attention head looks at. Made with GPT-40k, a kit to train one on your own books and show it like this.
"""


def _root() -> Path:
    root = project_root()
    if root is None:
        raise GPT40kError("this installation of gpt40k holds no app.py and requirements.txt to deploy (it was "
                          "installed without them): deploy from a clone of the GPT-40k repository, or reinstall "
                          "it with pip install from a wheel or the repository")
    return root


def space_readme(model: str | None) -> str:
    """The Space's README: this repository's front matter (the one source of truth), its model listed."""
    text = (_root() / "README.md").read_text(encoding="utf-8")
    match = re.match(r"\A---\n(.*?)\n---\n", text, re.S)
    if not match:
        raise GPT40kError("README.md has no front matter to configure the Space with")
    front = match.group(1)
    if model:
        front = re.sub(r"^models:.*$", f"models: [{parse_repo_ref(model)[0]}]", front, flags=re.M)
    return f"---\n{front}\n---\n{SPACE_BODY}"


def _copy_checkpoint(src: Path, dest: Path) -> None:
    """A shipped checkpoint's own files and its snapshots' (nothing else a user may keep beside them)."""
    dest.mkdir(parents=True)
    for name in (*CHECKPOINT_FILES, CARD_FILE, CURVE_FILE, SNAPSHOT_INFO_FILE):
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
    for snap in sorted((src / SNAPSHOTS_DIR).glob("step-*")):
        if (snap / SNAPSHOT_INFO_FILE).is_file():
            _copy_checkpoint(snap, dest / SNAPSHOTS_DIR / snap.name)


def stage(folder: Path, model: str | None) -> list[str]:
    """Copy what the Space needs into ``folder``; return the files, relative paths, sorted: app.py,
    requirements.txt, the gpt40k package (as installed here) and the shipped checkpoints."""
    root = _root()
    for name in SPACE_FILES:
        if (root / name).is_file():
            shutil.copyfile(root / name, folder / name)
    shutil.copytree(PACKAGE_DIR, folder / "gpt40k", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in SHIPPED_MODELS:
        if (checkpoints_dir() / name / CONFIG_FILE).is_file():
            _copy_checkpoint(checkpoints_dir() / name, folder / "checkpoints" / name)
    (folder / "README.md").write_text(space_readme(model), encoding="utf-8")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def deploy(space_id: str, *, model: str | None = None, hardware: str | None = None, private: bool = False,
           token_secret: bool = False, token: str | None = None, log=print) -> str:
    """Create or update the Space; return its URL. Every failure is a HubError saying what to do."""
    repo_id, revision = parse_repo_ref(space_id)
    if revision:
        raise HubError("give the Space as USER/NAME, without @revision")
    if model:
        parse_repo_ref(model)
    api, token = write_api(token, f"deploying {repo_id}")
    with tempfile.TemporaryDirectory() as tmp:
        files = stage(Path(tmp), model)
        log(f"uploading {len(files)} files to the Space {repo_id}")
        try:
            url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                                  space_hardware=hardware)
            api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=tmp,
                              commit_message="Deploy GPT-40k" + (f" showing {model}" if model else ""))
        except Exception as e:
            raise _push_error(e, repo_id, token) from None
    steps = [("the Space variable GPT40K_MODEL", lambda: api.add_space_variable(
                  repo_id, "GPT40K_MODEL", model, description="the model the page shows")) if model else None,
             ("the Space secret HF_TOKEN", lambda: api.add_space_secret(
                  repo_id, "HF_TOKEN", token, description="reads a private model")) if token_secret else None]
    for what, call in filter(None, steps):
        try:
            call()
        except Exception as e:
            error = _push_error(e, repo_id, token)
            raise HubError(f"the files are uploaded, but setting {what} failed: {error}. Set it in the Space's "
                           "settings, or run this command again") from None
        log(f"set {what}")
    return str(url)
