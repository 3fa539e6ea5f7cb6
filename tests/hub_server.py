"""Test scaffolding: a tiny in-memory stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1.

The real Hub cannot be reached from the test machines, so the tests point the real
``huggingface_hub`` client at this server (HF_ENDPOINT) and exercise it end to end: create a
repository, make branches, commit files inline ("regular" upload mode, no LFS), and download
them again. Tokens map to users; a bad token gets 401, writing to someone else's namespace 403.
It answers only what the client asks for in these tests; it is not a Hub implementation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit id
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit id -> {path: content}
    messages: dict[str, str] = field(default_factory=dict)  # commit id -> commit message
    settings: dict = field(default_factory=dict)  # a Space's sdk and hardware, as created
    variables: dict[str, str] = field(default_factory=dict)  # a Space's variables
    secrets: dict[str, str] = field(default_factory=dict)  # a Space's secrets

    def commit(self, parent: str | None, files: dict[str, bytes], message: str) -> str:
        tree = dict(self.commits.get(parent, {}))
        tree.update(files)
        oid = hashlib.sha1(f"{parent}{message}{time.time_ns()}".encode()).hexdigest()
        self.commits[oid] = tree
        self.messages[oid] = message
        return oid


class HubState:
    def __init__(self, tokens: dict[str, str]):
        self.tokens = tokens  # token -> user name
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, authorization header)
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    state: HubState  # set on the subclass made per server

    def log_message(self, *args):  # keep test output clean
        pass

    # ---- helpers ----
    def _reply(self, status: int, body: bytes | dict | None = None, headers: dict | None = None):
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        self.send_response(status)
        ctype = "application/json" if isinstance(body, dict) else "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _reply_json_list(self, items: list):
        data = json.dumps(items).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str):
        self._reply(status, {"error": message}, {"X-Error-Message": message})

    def _user(self) -> str | None | bool:
        """The user of the bearer token; None without a token; False for an unknown token."""
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        return self.state.tokens.get(auth.removeprefix("Bearer ").strip(), False)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _record(self):
        with self.state.lock:
            self.state.requests.append((self.command, self.path, self.headers.get("Authorization")))

    def _repo_for_write(self, repo_id: str, prefix: str = "") -> Repo | None:
        user = self._user()
        if user is False or user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None
        if repo_id.split("/")[0] != user:
            self._error(403, f"You don't have the rights to write to {repo_id}")
            return None
        repo = self.state.repos.get(prefix + repo_id)
        if repo is None:
            self._error(404, "Repository not found")
        return repo

    def _repo_for_read(self, repo_id: str) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        user = self._user()
        if user is False:
            self._error(401, "Invalid credentials in Authorization header")
            return None
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return None
        return repo

    # ---- routes ----
    def do_POST(self):  # noqa: N802
        self._record()
        path = urlparse(self.path).path
        parts = [unquote(p) for p in path.strip("/").split("/")]
        body = self._body()
        if path == "/api/validate-yaml":  # the client checks a README's metadata before committing it
            data = json.loads(body)
            content = data.get("content", "")
            wanted = "sdk: gradio" if data.get("repoType") == "space" else "library_name: gpt40k"
            ok = content.startswith("---\n") and wanted in content
            return self._reply(200 if ok else 400, {"errors": [] if ok else [{"message": "bad metadata"}],
                                                    "warnings": []})
        if path == "/api/repos/create":
            data = json.loads(body)
            repo_id = f"{data.get('organization') or self._user()}/{data['name']}"
            space = data.get("type") == "space"  # Spaces live beside models: same name, another repository
            user = self._user()
            if not user:
                return self._error(401, "Invalid credentials in Authorization header")
            if repo_id.split("/")[0] != user:
                return self._error(403, f"You don't have the rights to create a repository under {repo_id}")
            host = f"http://{self.headers['Host']}"
            key = f"spaces/{repo_id}" if space else repo_id
            with self.state.lock:
                if key in self.state.repos:
                    return self._reply(409, {"error": "You already created this repo", "url": f"{host}/{key}"})
                repo = Repo(private=bool(data.get("private") or data.get("visibility") == "private"))
                repo.settings = {k: data[k] for k in ("sdk", "hardware") if k in data}
                repo.branches["main"] = repo.commit(None, {".gitattributes": b"*.safetensors filter=lfs\n"},
                                                    "initial commit")
                self.state.repos[key] = repo
            return self._reply(200, {"url": f"{host}/{key}", "name": repo_id})
        if len(parts) == 5 and parts[:2] == ["api", "spaces"] and parts[4] in ("variables", "secrets"):
            repo = self._repo_for_write(f"{parts[2]}/{parts[3]}", prefix="spaces/")
            if repo is None:
                return None
            data = json.loads(body)
            getattr(repo, parts[4])[data["key"]] = data["value"]
            if parts[4] == "secrets":
                return self._reply(200, {})
            return self._reply(200, {k: {"value": v, "updatedAt": "2026-11-26T00:00:00.000Z"}
                                     for k, v in repo.variables.items()})
        if len(parts) >= 6 and parts[:2] in (["api", "models"], ["api", "spaces"]):
            repo_id, action, rev = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
            repo = self._repo_for_write(repo_id, prefix="spaces/" if parts[1] == "spaces" else "")
            if repo is None:
                return None
            if action == "preupload":
                files = json.loads(body).get("files", [])
                return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                    "shouldIgnore": False} for f in files]})
            if action == "commit":
                return self._commit(repo, repo_id, rev, body)
            if action == "branch":
                with self.state.lock:
                    if rev in repo.branches:
                        return self._error(409, "Reference already exists")
                    start = json.loads(body or b"{}").get("startingPoint") or "main"
                    repo.branches[rev] = repo.branches.get(start, start)
                return self._reply(200, {})
        return self._error(404, f"no route for POST {path}")

    def _commit(self, repo: Repo, repo_id: str, rev: str, body: bytes):
        files, message = {}, ""
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item["key"] == "header":
                message = item["value"].get("summary", "")
            elif item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        with self.state.lock:
            if rev not in repo.branches:
                return self._error(404, f"Invalid rev id: {rev}")
            oid = repo.commit(repo.branches[rev], files, message)
            repo.branches[rev] = oid
        host = f"http://{self.headers['Host']}"
        return self._reply(200, {"commitUrl": f"{host}/{repo_id}/commit/{oid}", "commitOid": oid,
                                 "pullRequestUrl": None})

    def _resolve(self, repo: Repo, rev: str) -> str | None:
        return repo.branches.get(rev) or (rev if rev in repo.commits else None)

    def do_GET(self):  # noqa: N802
        self._record()
        path = urlparse(self.path).path
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id = f"{parts[2]}/{parts[3]}"
            repo = self._repo_for_read(repo_id)
            if repo is None:
                return None
            if len(parts) == 5 and parts[4] == "refs":  # list_repo_refs: the branches (step-N snapshots)
                return self._reply(200, {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha}
                                                      for b, sha in sorted(repo.branches.items())],
                                         "tags": [], "converts": []})
            rev = "/".join(parts[5:]) if len(parts) > 5 and parts[4] in ("revision", "tree") else "main"
            sha = self._resolve(repo, rev)
            if sha is None:
                return self._reply(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
            tree = repo.commits[sha]
            if len(parts) > 4 and parts[4] == "tree":  # the file listing snapshot_download asks for
                return self._reply_json_list([
                    {"type": "file", "path": p, "size": len(c), "oid": hashlib.sha1(c).hexdigest()}
                    for p, c in sorted(tree.items())])
            return self._reply(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                                     "siblings": [{"rfilename": p} for p in sorted(tree)]})
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._serve_file(parts)
        return self._error(404, f"no route for GET {path}")

    def do_HEAD(self):  # noqa: N802
        self._record()
        parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._serve_file(parts)
        return self._error(404, "not found")

    def _serve_file(self, parts: list[str]):
        repo_id, rev, filename = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
        repo = self._repo_for_read(repo_id)
        if repo is None:
            return None
        sha = self._resolve(repo, rev)
        if sha is None:
            return self._reply(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        content = repo.commits[sha].get(filename)
        if content is None:
            return self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        etag = hashlib.sha1(content).hexdigest()
        return self._reply(200, content, {"X-Repo-Commit": sha, "ETag": f'"{etag}"'})


class FakeHub:
    """Start with ``FakeHub(port, tokens).start()``; stop with ``.stop()``."""

    def __init__(self, port: int, tokens: dict[str, str]):
        self.state = HubState(tokens)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        repo = self.state.repos[repo_id]
        return repo.commits[repo.branches.get(rev, rev)]

    def message(self, repo_id: str, rev: str = "main") -> str:
        repo = self.state.repos[repo_id]
        return repo.messages[repo.branches[rev]]
