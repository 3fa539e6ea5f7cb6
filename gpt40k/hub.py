"""Pulling GPT-40k models from the Hugging Face Hub, through ``huggingface_hub``'s public API."""

from __future__ import annotations

import re
from pathlib import Path

from .checkpoint import CheckpointError, find_checkpoint
from .errors import GPT40kError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "README.md", "*.png", "*.jsonl"]


class HubError(GPT40kError, RuntimeError):
    """Talking to the Hub failed; the message says what failed and how to fix it."""


def parse_repo_ref(ref: str) -> tuple[str, str | None]:
    """``"user/name@rev"`` -> ``("user/name", "rev")``; the revision is optional."""
    repo_id, _, revision = ref.partition("@")
    if not REPO_ID.match(repo_id):
        raise HubError(f"{ref!r} is neither an existing folder nor a Hub repository id like 'user/name[@revision]'")
    return repo_id, revision or None


def resolve_model_dir(name_or_path: str, revision: str | None = None, token: str | bool | None = None,
                      cache_dir: str | None = None) -> Path:
    """A local folder holding the checkpoint: the path itself, or a download from the Hub."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return find_checkpoint(path)
    repo_id, ref_revision = parse_repo_ref(name_or_path)
    revision = revision or ref_revision
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES, token=token,
                                   cache_dir=cache_dir)
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r}: check the branch or tag name") from None
    except GatedRepoError:
        raise HubError(f"{where} is gated: accept its terms on the Hub and log in (HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise HubError(f"{where} was not found on the Hub, or it is private and no valid token was given "
                       "(set HF_TOKEN or run `hf auth login`)") from None
    except LocalEntryNotFoundError:
        raise HubError(f"{where} is not in the local Hugging Face cache and the Hub cannot be reached "
                       "(offline, or HF_HUB_OFFLINE=1): connect, or pass a local folder") from None
    except (HfHubHTTPError, OSError) as e:
        raise HubError(f"downloading {where} failed: {e}") from None
    try:
        return find_checkpoint(folder)
    except CheckpointError:
        raise CheckpointError(f"{where} is not a GPT-40k model: it has no config.json "
                              "(a GPT-40k repository holds config.json, model.safetensors and tokenizer.json)") from None
