"""Where the page's model runs on a Hugging Face Space, and for how long a ZeroGPU Space asks for a GPU.

ZeroGPU attaches a GPU only inside functions decorated with ``@spaces.GPU(duration=...)``, and
checks the *requested* duration against each visitor's remaining quota ("59s left vs. 60s
requested"); shorter requests also queue ahead. So each request asks for what its length needs
(``gpu_seconds``), computed per call from its arguments, never a fixed minute.

For a model this small the Space's CPU is the faster choice: decoding on a GPU is launch-bound
(README, Benchmarks: an H100 with the recorded CUDA graph wrote 1,119-1,822 characters/s, one
thread of that machine's CPU 779-927), and every ZeroGPU call first waits for a GPU to be
attached. For the page's default request (300 characters) the CPU takes ~0.4 s and the GPU
~0.27 s plus the attach, so the CPU wins unless attaching took under ~0.1 s. ``use_gpu`` makes
that comparison with the model's size: only a model large enough that its CPU rate falls well
below the GPU's (the 19M-parameter ``seed-20m``: ~70 characters/s) gets the GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable

GPU_CHARS_PER_S = 1000.0  # below the slowest H100 run with the CUDA graph (1,119 characters/s)
CPU_CHARS_PER_S_1_8M = 750.0  # the shipped 1.87M-parameter model on one thread of the slowest GPU host measured
# (an H100's: 779-927). A ZeroGPU Space runs on such a host; a 2-core AVX2-only EPYC, no GPU host, writes 381.
SHIPPED_PARAMS = 1.87e6  # decoding is bound by reading the weights: the CPU rate falls with the model's size
ATTACH_S = 0.5  # not measurable here; a low guess (a round trip to ZeroGPU's scheduler, the weights moved):
# a longer attach only favours the CPU more
MARGIN, FLOOR_S, CEILING_S = 2.0, 5, 60  # requested = clamp(FLOOR + MARGIN x the estimate); 60 s is the cap
LONGEST_REQUEST = 2000  # characters (request.LIMITS)
DEFAULT_REQUEST = 300  # the page's default length: the request the CPU-or-GPU choice is made for


def zero_gpu_active() -> bool:
    """True on a ZeroGPU Space (the ``spaces`` package says so); False everywhere else."""
    try:
        from spaces.config import Config
    except ImportError:
        return False
    return bool(Config.zero_gpu)


def gpu_seconds(chars: object) -> int:
    """Seconds to ask ZeroGPU for a run of ``chars`` characters: the estimate at the GPU's measured rate,
    doubled, plus a floor for moving the model and recording the graph; at most the request's time budget."""
    try:
        n = max(1, min(int(chars), LONGEST_REQUEST))
    except (TypeError, ValueError, OverflowError):
        n = LONGEST_REQUEST  # the request's own checks report it; ask for the longest run
    return int(min(CEILING_S, math.ceil(FLOOR_S + MARGIN * n / GPU_CHARS_PER_S)))


def cpu_chars_per_s(n_params: int) -> float:
    return CPU_CHARS_PER_S_1_8M * SHIPPED_PARAMS / max(n_params, 1)


def use_gpu(n_params: int, chars: int = DEFAULT_REQUEST) -> bool:
    """Whether a GPU attached per call writes ``chars`` characters sooner than the CPU does."""
    return ATTACH_S + chars / GPU_CHARS_PER_S < chars / cpu_chars_per_s(n_params)


def gpu_function(fn: Callable, chars_arg: int) -> Callable:
    """``fn`` under ``@spaces.GPU``, asking for the seconds its positional argument ``chars_arg``
    (the number of characters) needs. Off ZeroGPU the decorator gives ``fn`` back unchanged."""
    import spaces

    def duration(*args, **kwargs) -> int:
        return gpu_seconds(args[chars_arg] if len(args) > chars_arg else None)

    return spaces.GPU(duration=duration)(fn)
