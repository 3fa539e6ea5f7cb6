"""The Hugging Face Hub client of GPT-40k, through ``huggingface_hub``'s public API, and where a
checkpoint is.

``locate("runs/mine")`` and ``locate("user/name@rev")`` both answer with a local folder holding
config.json and model.safetensors (a training run's best/, or a Hub repository downloaded into
the Hugging Face cache). Everything that reads a checkpoint starts there, so each gives the same
answer and the same messages: a path that does not exist is reported as one (and why it is no
Hub id either). ``push_folder`` uploads a folder in one commit. Publishing a training run (its
card, snapshots, training state) is ``publish.py``.

A GPT-40k repository holds a checkpoint folder at its root (config.json, model.safetensors,
tokenizer.json, README.md, loss_curve.png). With --push-training-state it also holds
``last-checkpoint/`` (the run's latest/ folder, training_state.pt included), as the
Transformers Trainer does, so ``--resume hub:user/name`` continues on another machine.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import CheckpointError, HubError
from ..files import (
    BEST_DIR,
    CARD_FILE,
    CHECKPOINT_FILES,
    CONFIG_FILE,
    LATEST_DIR,
    RESUME_DIR,
    STATE_FILE,
    WEIGHTS_FILE,
    kept_copy,
)

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MODEL_FILES = [*CHECKPOINT_FILES, CARD_FILE, "*.png"]  # what a download of a model fetches
# Seconds to wait for the Hub to answer (to connect, or for the next bytes): a stalled server or network
# becomes a message, never a hang. GPT40K_HUB_TIMEOUT changes it (a slow link: raise it).
HUB_TIMEOUT_S = float(os.environ.get("GPT40K_HUB_TIMEOUT", "30"))


def _bound_the_wait(request) -> None:
    """An httpx request hook: huggingface_hub sends most requests with no timeout at all (it waits for
    ever on a server that accepts and never answers); give each unset one HUB_TIMEOUT_S."""
    limits = request.extensions.get("timeout") or {}
    request.extensions["timeout"] = {k: HUB_TIMEOUT_S if limits.get(k) is None else limits[k]
                                     for k in ("connect", "read", "write", "pool")}


def hub_session():
    """huggingface_hub's shared HTTP client, with every request's wait bounded."""
    from huggingface_hub import get_session

    session = get_session()
    hooks = session.event_hooks
    if _bound_the_wait not in hooks.get("request", []):
        hooks.setdefault("request", []).append(_bound_the_wait)
        session.event_hooks = hooks
    return session


def _timed_out(e: BaseException | None) -> bool:
    """Whether ``e``, or an error it came from (huggingface_hub re-raises), is a timeout."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if "timeout" in type(e).__name__.lower() or "timed out" in str(e).lower():
            return True
        e = e.__cause__ or e.__context__
    return False


def _unreachable(what: str, e: BaseException, token: str | None) -> str:
    if _timed_out(e):
        return (f"{what} failed: the Hub did not answer within {HUB_TIMEOUT_S:g} s (a stalled network or "
                "server): try again later, or raise GPT40K_HUB_TIMEOUT")
    return f"{what} failed, the Hub could not be reached: {type(e).__name__}: {redact(str(e), token)}"


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder meant by a local ``path``: itself, or a run folder's best (else latest).
    ``files.kept_copy`` is where a save that was killed between two renames left the complete copy."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    best, latest = path / BEST_DIR, path / LATEST_DIR
    # a kept copy of best/ is the complete best checkpoint (a kill between two renames): before latest/
    for candidate in (path, best, kept_copy(best), latest, kept_copy(latest)):
        if (candidate / CONFIG_FILE).exists():  # not is_file(): a config that is no regular file is refused
            return candidate                   # with its reason when it is read (files.checked_file)
    raise CheckpointError(
        f"{path} holds no GPT-40k checkpoint: expected {CONFIG_FILE} and {WEIGHTS_FILE} in it, "
        f"or a run folder with {BEST_DIR}/ or {LATEST_DIR}/")


def parse_repo_ref(ref: str) -> tuple[str, str | None]:
    """``"user/name@rev"`` -> ``("user/name", "rev")``; the revision is optional."""
    repo_id, _, revision = ref.partition("@")
    if not REPO_ID.match(repo_id):
        raise HubError(f"{ref!r} is neither an existing folder nor a Hub repository id like 'user/name[@revision]'")
    return repo_id, revision or None


def locate(name_or_path: str | Path, *, revision: str | None = None, token: str | bool | None = None,
           cache_dir: str | None = None) -> Path:
    """A local folder holding the checkpoint: the path itself (or its run's best/), or a Hub download."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return find_checkpoint(path)
    if not REPO_ID.match(str(name_or_path).partition("@")[0]):  # cannot be a Hub id either
        raise CheckpointError(f"{name_or_path} does not exist (no such folder)")
    try:
        repo_id, ref_revision = parse_repo_ref(str(name_or_path))
        folder = download(repo_id, revision or ref_revision, MODEL_FILES, token, cache_dir)
    except HubError as e:  # "runs/mine" may be a mistyped folder as well as a Hub id: say both
        raise HubError(f"{name_or_path} is no folder here (no such path), and as a Hub model: {e}") from None
    try:
        return find_checkpoint(folder)
    except CheckpointError:
        raise CheckpointError(f"{repo_id} is not a GPT-40k model: it has no {CONFIG_FILE} (a GPT-40k "
                              f"repository holds {', '.join(CHECKPOINT_FILES)})") from None


def locate_resumable(ref: str, token=None, cache_dir=None) -> Path:
    """The ``last-checkpoint/`` folder of ``user/name[@rev]``, for --resume hub:user/name."""
    repo_id, revision = parse_repo_ref(ref)
    patterns = [f"{RESUME_DIR}/*", *MODEL_FILES]  # and the best checkpoint at the root, which the run goes on from
    folder = download(repo_id, revision, patterns, token or find_token(), cache_dir) / RESUME_DIR
    if not (folder / STATE_FILE).is_file():
        raise HubError(f"{repo_id} holds no {RESUME_DIR}/ to resume from: push with --push-training-state")
    return folder


def find_token() -> str | None:
    """HF_TOKEN, else the token saved by `hf auth login`, else a Kaggle secret named HF_TOKEN."""
    from huggingface_hub import get_token

    token = get_token()  # reads HF_TOKEN first, then the saved login
    if token:
        return token
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or os.environ.get("KAGGLE_URL_BASE"):
        try:
            from kaggle_secrets import UserSecretsClient  # present only inside Kaggle notebooks

            return UserSecretsClient().get_secret("HF_TOKEN") or None
        except Exception:  # no such secret, or secrets not attached to this notebook
            return None
    return None


def redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def download(repo_id: str, revision: str | None, allow_patterns: list[str], token=None, cache_dir=None) -> Path:
    """snapshot_download with each failure turned into a HubError that says what to do."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = repo_id + (f" (revision {revision})" if revision else "")
    hub_session()
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns, token=token,
                                      cache_dir=cache_dir, library_name="gpt40k"))
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r}: check the branch or tag name") from None
    except GatedRepoError:
        raise HubError(f"{where} is gated: accept its terms on the Hub and log in (HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise HubError(f"{where} was not found on the Hub, or it is private and no valid token was given "
                       "(set HF_TOKEN or run `hf auth login`)") from None
    except LocalEntryNotFoundError as e:
        if _timed_out(e):
            raise HubError(_unreachable(f"downloading {where}", e, token)) from None
        raise HubError(f"{where} is not in the local Hugging Face cache and the Hub cannot be reached "
                       "(offline, or HF_HUB_OFFLINE=1): connect, or pass a local folder") from None
    except (HfHubHTTPError, OSError) as e:
        if _timed_out(e):
            raise HubError(_unreachable(f"downloading {where}", e, token)) from None
        raise HubError(f"downloading {where} failed: {redact(str(e), token)}") from None
    except Exception as e:  # httpx network errors and the like
        raise HubError(_unreachable(f"downloading {where}", e, token)) from None


# ---- pushing ----------------------------------------------------------------------------
def _push_error(e: Exception, repo_id: str, token: str | None) -> HubError:
    from huggingface_hub.errors import HfHubHTTPError

    status = getattr(getattr(e, "response", None), "status_code", None)
    if status == 401:
        why = "the Hub rejected the token (invalid or expired): make a new write token at hf.co/settings/tokens"
    elif status == 403:
        why = (f"the token may not write to {repo_id} (a read-only token, or a namespace that is not yours): "
               "use a token with write access")
    elif isinstance(e, ValueError):  # the client's own checks, e.g. of the README's metadata
        why = f"the Hub refused it: {redact(str(e), token)}"
    elif isinstance(e, HfHubHTTPError):
        why = f"the Hub answered with an error: {redact(str(e), token)}"
    else:
        network = "" if _timed_out(e) else "; check the network"
        return HubError(_unreachable(f"pushing to {repo_id}", e, token) + network)
    return HubError(f"pushing to {repo_id} failed: {why}")


def write_api(token: str | None, action: str):
    """(HfApi, token) with the token given, else the one found; ``action`` ("pushing to user/name")
    names what fails when there is none."""
    from huggingface_hub import HfApi

    token = token or find_token()
    hub_session()
    if not token:
        raise HubError(f"{action} failed: no Hugging Face token found. Set HF_TOKEN, run `hf auth login`, "
                       "or on Kaggle add a secret named HF_TOKEN (a token with write access)")
    return HfApi(token=token, library_name="gpt40k"), token


def push_folder(folder: str | Path, repo_id: str, *, commit_message: str, private: bool = False,
                branch: str | None = None, token: str | None = None,
                training_state: str | Path | None = None, extra_files: dict[str, Path] | None = None,
                texts: dict[str, str] | None = None) -> str:
    """Upload a checkpoint folder to the root of ``repo_id`` (creating the repository if needed)
    in one commit, optionally with a resumable folder under last-checkpoint/, ``extra_files``
    (path in the repository -> local file) and ``texts`` (path -> content, e.g. a fresh card).
    Returns the commit URL. Nothing local is written: everything is staged in a temporary folder."""
    parse_repo_ref(repo_id)
    api, token = write_api(token, f"pushing to {repo_id}")
    with tempfile.TemporaryDirectory() as staging:  # one folder, one commit: never half a model
        staging = Path(staging)
        shutil.copytree(folder, staging, dirs_exist_ok=True)
        if training_state is not None:
            shutil.copytree(training_state, staging / RESUME_DIR)
        for path_in_repo, local in (extra_files or {}).items():
            (staging / path_in_repo).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, staging / path_in_repo)
        for path_in_repo, text in (texts or {}).items():
            (staging / path_in_repo).write_text(text, encoding="utf-8")
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if branch:
                api.create_branch(repo_id, branch=branch, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=staging, revision=branch,
                                     commit_message=commit_message)
        except Exception as e:  # every failure becomes a clear message; nothing local is touched
            raise _push_error(e, repo_id, token) from None
    return str(info.commit_url)


def step_branches(repo_id: str) -> list[int]:
    """The N of the ``step-N`` branches that --push-every made (empty when there are none or the Hub is away)."""
    from huggingface_hub import HfApi

    hub_session()
    refs = HfApi(library_name="gpt40k").list_repo_refs(repo_id)
    return sorted(int(b.name[5:]) for b in refs.branches if re.fullmatch(r"step-\d+", b.name))
