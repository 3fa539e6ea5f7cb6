"""What a training process owes its run folder: stop cleanly on a signal, and be its only writer."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from ..errors import TrainingError
from ..files import LOCK_FILE


class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop saves a resumable checkpoint and exits at the next step.
    A second SIGINT falls back to Python's default (an immediate KeyboardInterrupt)."""

    def __init__(self):
        self.requested: str | None = None

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        # SIGHUP too: a closed terminal or dropped SSH session saves like Ctrl-C does.
        stops = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {s: signal.signal(s, self._handle) for s in stops}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@contextmanager
def run_lock(out: Path):
    """One trainer per run folder: a second one would interleave metrics and overwrite checkpoints."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    with open(out / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TrainingError(f"another train.py is writing to {out}: wait for it to end, or give this run "
                                "another --out") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
