"""What keeps one visitor from freezing or starving the page for everyone else.

- ``BodyLimit``: an ASGI middleware that refuses a request body over MAX_BODY_BYTES (413) before
  anything parses it, whether it announces its length or streams it.
- ``ClientLimits``: per client (an address), at most MAX_RUNNING generations at once (a further one
  is answered at once with a note, so it never holds a slot), and at most MAX_QUEUED places in the
  queue (a join past that gets 429), so one client cannot fill the queue that the others wait in. A
  place is given back when its job starts; one whose job never starts (cancelled while waiting)
  lapses after QUEUED_TTL_S.

A client is its network address. Behind a proxy (Hugging Face Spaces, or GPT40K_BEHIND_PROXY=1)
every request comes from the proxy, so the first X-Forwarded-For address is the client's.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections import defaultdict, deque

MAX_BODY_BYTES = 1 << 20  # a prompt is cut at 100,000 characters anyway: 1 MiB of JSON holds it
MAX_RUNNING = 2  # generations one client may have running at once (the page runs 4 in all)
MAX_QUEUED, QUEUED_TTL_S = 16, 30.0
JOIN_PATH = "/gradio_api/queue/join"


def behind_proxy() -> bool:
    return bool(os.environ.get("SPACE_ID")) or os.environ.get("GPT40K_BEHIND_PROXY") == "1"


def client_key(headers: dict[str, str], peer: str | None) -> str:
    """The client's address: the socket's peer, or behind a proxy the first X-Forwarded-For entry."""
    forwarded = headers.get("x-forwarded-for", "")
    if behind_proxy() and forwarded.strip():
        return forwarded.split(",")[0].strip()[:64]
    return peer or "unknown"


class ClientLimits:
    def __init__(self, max_running: int = MAX_RUNNING, max_queued: int = MAX_QUEUED, ttl_s: float = QUEUED_TTL_S):
        self.max_running, self.max_queued, self.ttl_s = max_running, max_queued, ttl_s
        self._running: dict[str, int] = defaultdict(int)
        self._queued: dict[str, deque] = defaultdict(deque)  # when each of a client's waiting jobs joined
        self._lock = threading.Lock()

    def may_join(self, key: str) -> bool:
        """Take a queue place for ``key``, or refuse: it holds ``max_queued`` already."""
        now = time.monotonic()
        with self._lock:
            queued = self._queued[key]
            while queued and now - queued[0] > self.ttl_s:
                queued.popleft()
            if len(queued) >= self.max_queued:
                return False
            queued.append(now)
            return True

    def _left_queue(self, key: str) -> None:
        with self._lock:
            queued = self._queued.get(key)
            if queued:
                queued.popleft()
            if not queued:
                self._queued.pop(key, None)

    def start(self, key: str) -> bool:
        with self._lock:
            if self._running[key] >= self.max_running:
                return False
            self._running[key] += 1
            return True

    def end(self, key: str) -> None:
        with self._lock:
            self._running[key] -= 1
            if self._running[key] <= 0:
                del self._running[key]

    def fair(self, refused):
        """A decorator for a streaming handler: at most ``max_running`` at once per client; past that it
        yields ``refused`` (a message for the page or the API) at once. The handler takes a gr.Request."""
        def decorate(fn):
            @functools.wraps(fn)  # Gradio reads the handler's own signature (its gr.Request) through this
            def run(*args, **kwargs):
                key = request_key(next((a for a in (*args, *kwargs.values()) if _is_request(a)), None))
                self._left_queue(key)
                if not self.start(key):
                    yield refused
                    return
                try:
                    yield from fn(*args, **kwargs)
                finally:
                    self.end(key)
            return run
        return decorate


def _is_request(value) -> bool:
    return type(value).__name__ == "Request" and hasattr(value, "headers")


def request_key(request) -> str:
    if request is None:  # called from Python, not through the server
        return "local"
    headers = {k.lower(): v for k, v in dict(request.headers or {}).items()}
    return client_key(headers, getattr(getattr(request, "client", None), "host", None))


class BodyLimit:
    """ASGI middleware: request bodies over ``max_bytes`` get 413 before the app reads them; queue joins
    over the client's share get 429."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, limits: ClientLimits | None = None):
        self.app, self.max_bytes, self.limits = app, max_bytes, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _reply(send, 413, f"The request is larger than {self.max_bytes:,} bytes.")
        if self.limits is not None and scope.get("path") == JOIN_PATH and scope.get("method") == "POST":
            key = client_key(headers, (scope.get("client") or (None,))[0])
            if not self.limits.may_join(key):
                return await _reply(send, 429, f"Too many requests waiting from one client (at most "
                                               f"{self.limits.max_queued}): wait for them, then try again.")
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        # Read the body here, up to the bound (whatever Content-Length said, or with none: chunked), and
        # hand it on whole; a body past the bound is refused before the app sees a byte of it.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _reply(send, 413, f"The request is larger than {self.max_bytes:,} bytes.")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


async def _reply(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
