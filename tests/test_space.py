"""`python -m gpt40k.space deploy` against the loopback Hub stand-in (tests/hub_server.py)."""

import yaml

from conftest import TOKENS
from gpt40k import space
from gpt40k.hub import space as deploy_logic
from gpt40k.project import SHIPPED_MODELS

SECRET = next(iter(TOKENS))


def test_deploy_uploads_exactly_what_the_space_needs_and_sets_the_model(hub, capsys):
    assert space.main(["deploy", "alice/demo", "--model", "alice/my-model@step-100", "--hardware", "zero-a10g"]) == 0
    repo = hub.state.repos["spaces/alice/demo"]
    assert repo.settings == {"sdk": "gradio", "hardware": "zero-a10g"}
    files = hub.files("spaces/alice/demo")
    names = set(files)
    assert {"app.py", "requirements.txt", "README.md", "gpt40k/model/model.py", "gpt40k/app/page.py",
            "gpt40k/app/static/live/main.js", f"checkpoints/{SHIPPED_MODELS[0]}/model.safetensors",
            f"checkpoints/{SHIPPED_MODELS[0]}/config.json"} <= names
    assert not any(n.startswith(("tests/", "bench/", ".venv", "runs/", "docs/")) or "__pycache__" in n
                   for n in names)
    front = yaml.safe_load(files["README.md"].decode().split("---\n")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["models"] == ["alice/my-model"]
    assert front["python_version"] == "3.12"
    assert repo.variables == {"GPT40K_MODEL": "alice/my-model@step-100"} and repo.secrets == {}
    out = capsys.readouterr()
    assert "deployed: http://127.0.0.1:" in out.out and "/spaces/alice/demo" in out.out
    assert SECRET not in out.out + out.err


def test_deploy_again_updates_and_stores_the_token_only_when_asked(hub, capsys):
    assert space.main(["deploy", "alice/demo"]) == 0
    assert space.main(["deploy", "alice/demo", "--token-secret"]) == 0  # the Space exists: updated, not refused
    repo = hub.state.repos["spaces/alice/demo"]
    assert repo.secrets == {"HF_TOKEN": SECRET} and repo.variables == {}
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and "set the Space secret HF_TOKEN" in out.out


def test_a_model_and_a_space_may_share_a_name(hub):
    from gpt40k.hub.client import push_folder
    from conftest import ROOT

    push_folder(ROOT / "checkpoints" / SHIPPED_MODELS[0], "alice/shipped", commit_message="model")
    assert space.main(["deploy", "alice/shipped"]) == 0
    assert "model.safetensors" in hub.files("alice/shipped") and "app.py" in hub.files("spaces/alice/shipped")


def test_deploy_failures_say_what_to_do(hub, monkeypatch, capsys):
    assert space.main(["deploy", "bob/demo"]) == 1  # alice's token, bob's namespace
    assert "may not write to bob/demo" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token_000")
    assert space.main(["deploy", "alice/demo"]) == 1
    assert "rejected the token" in capsys.readouterr().err
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(hub.url))  # no saved login either
    assert space.main(["deploy", "alice/demo"]) == 1
    assert "no Hugging Face token" in capsys.readouterr().err
    assert space.main(["deploy", "not a space id"]) == 1
    assert "user/name" in capsys.readouterr().err
    assert "spaces/bob/demo" not in hub.state.repos


def test_deploy_without_network_is_a_clear_error(hub, monkeypatch, capsys):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert space.main(["deploy", "alice/demo"]) == 1
    assert "could not be reached" in capsys.readouterr().err


def test_a_failure_after_the_upload_says_what_is_done_and_what_is_not(hub, monkeypatch, capsys):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise ConnectionError("connection reset")

    monkeypatch.setattr(huggingface_hub.HfApi, "add_space_variable", refuse)
    assert space.main(["deploy", "alice/demo", "--model", "alice/m"]) == 1
    err = capsys.readouterr().err
    assert "the files are uploaded, but setting the Space variable GPT40K_MODEL failed" in err
    assert "app.py" in hub.files("spaces/alice/demo")


def test_deploy_uploads_only_the_shipped_checkpoints(hub, tmp_path, monkeypatch):
    """A user's own models kept in checkpoints/ stay local; the shipped ones go up with their snapshots."""
    import shutil

    from conftest import ROOT
    from gpt40k.project import SHIPPED_MODELS

    folder = tmp_path / "checkpoints"
    for name in SHIPPED_MODELS:
        shutil.copytree(ROOT / "checkpoints" / name, folder / name)
    shutil.copytree(ROOT / "checkpoints" / SHIPPED_MODELS[0], folder / "my-own-model")
    (folder / SHIPPED_MODELS[0] / "notes.txt").write_text("mine")
    monkeypatch.setattr(deploy_logic, "checkpoints_dir", lambda: folder)
    assert space.main(["deploy", "alice/demo"]) == 0
    names = set(hub.files("spaces/alice/demo"))
    assert not any("my-own-model" in n or n.endswith("notes.txt") for n in names)
    shipped = {str(p.relative_to(ROOT)) for name in SHIPPED_MODELS for p in (ROOT / "checkpoints" / name).rglob("*")
               if p.is_file()}
    assert shipped <= names
