"""Installed the ways users and Spaces install it, each in a fresh virtual environment:

- a Space: `pip install -r requirements.txt` with that file alone (as Spaces mount it), then
  `python app.py` in a folder holding exactly what `gpt40k.space deploy` uploads;
- `pip install "gpt40k-*.whl[app]"` (not editable), its commands run from another folder.

torch is installed first at the tests' pinned version (a CPU build on these machines; a Space gets
PyPI's), so requirements.txt's `torch>=2.4` is met without a multi-GB download. Slow (a minute or
two of installs), and run by `make test` and CI like every other test.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, _free_port

pytest.importorskip("gradio_client")
TORCH = "torch==2.13.0"


def sh(*cmd, cwd=None, env=None, timeout=900):
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new venv with torch and, from requirements.txt alone in a folder, what a Space installs."""
    base = tmp_path_factory.mktemp("fresh")
    sh(sys.executable, "-m", "venv", base / "venv")
    python = base / "venv" / "bin" / "python"
    sh(python, "-m", "pip", "install", "-q", TORCH)
    alone = base / "mounted"  # Spaces mount requirements.txt by itself: no `-r other-file.txt` can work
    alone.mkdir()
    shutil.copyfile(ROOT / "requirements.txt", alone / "requirements.txt")
    sh(python, "-m", "pip", "install", "-q", "-r", alone / "requirements.txt", cwd=alone)
    return python


def wait_for_page(proc, port: int) -> str:
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the app did not answer in time")


def generate_through_the_api(url: str) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    return client.predict("The Emperor", 40, 0.8, 0, 1.0, 0, api_name="/generate")


def serve(cmd, cwd, python_env):
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_ENDPOINT": "http://127.0.0.1:9",
           "PYTHONPATH": "", **python_env}
    proc = subprocess.Popen([*map(str, cmd), "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_space_builds_and_serves_from_what_deploy_uploads(fresh_venv, tmp_path):
    from gpt40k.hub import space

    folder = tmp_path / "space"
    folder.mkdir()
    files = space.stage(folder, None)
    assert "requirements.txt" in files and not any(f.startswith("requirements-") for f in files)
    assert "-r" not in (folder / "requirements.txt").read_text().split()
    proc, port = serve([fresh_venv, "app.py"], folder, {})
    try:
        answer = generate_through_the_api(wait_for_page(proc, port))
        assert answer["text"].startswith("The Emperor") and len(answer["text"]) == len("The Emperor") + 40
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/mcp/schema", timeout=10) as r:
            assert r.status == 200 and b"generate" in r.read()  # gradio[mcp] came with requirements.txt
    finally:
        stop(proc)


def test_the_wheel_installs_and_every_command_works_from_another_folder(fresh_venv, tmp_path, hub):
    wheels = tmp_path / "wheels"
    sh(fresh_venv, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT, cwd=tmp_path)
    wheel = next(wheels.glob("gpt40k-*.whl"))
    sh(fresh_venv, "-m", "pip", "install", "-q", f"{wheel}[app]", cwd=tmp_path)
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # pip wheel's build folder, in the source tree
    bin_dir = fresh_venv.parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = sh(fresh_venv, "-c", "import gpt40k, pathlib; print(pathlib.Path(gpt40k.__file__).parent)", cwd=elsewhere)
    assert "site-packages" in out  # the installed package, not the clone
    # no checkpoints/ here: the app finds the ones the wheel installed
    proc, port = serve([bin_dir / "gpt40k-app"], elsewhere, {})
    try:
        assert generate_through_the_api(wait_for_page(proc, port))["text"].startswith("The Emperor")
    finally:
        stop(proc)
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_writer_secret_token_1234", "PYTHONPATH": "",
           "HF_HOME": str(tmp_path / "hf")}
    out = sh(bin_dir / "gpt40k-space", "deploy", "alice/from-wheel", cwd=elsewhere, env=env)
    assert "deployed:" in out
    names = set(hub.files("spaces/alice/from-wheel"))
    assert {"app.py", "requirements.txt", "README.md", "gpt40k/model/model.py", "gpt40k/app/static/live/main.js"} <= names
    assert any(n.startswith("checkpoints/") and n.endswith("model.safetensors") for n in names)
    for command in ("gpt40k-train", "gpt40k-sample", "gpt40k-push", "gpt40k-card", "gpt40k-convert"):
        assert "usage:" in sh(bin_dir / command, "--help", cwd=elsewhere, env={"PYTHONPATH": ""})
