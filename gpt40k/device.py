"""Where the work runs: the device, the CPU's name and features, mixed precision, and the CPU's
memory allocator. Training, the page and the benchmarks all ask here."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform

import torch

from .errors import DeviceError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU; an unavailable choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but PyTorch sees no CUDA GPU "
                               "(check the driver and that a CUDA build of torch is installed), or use --device cpu")
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("--device mps was asked for, but MPS is not available on this machine; use --device cpu")
    return torch.device(name)


def describe_hardware(device: torch.device, world_size: int = 1) -> str:
    """E.g. "2 x Tesla T4" or "AMD EPYC (2 threads)", for run summaries and model cards."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple MPS"
    else:
        threads = torch.get_num_threads()
        name = f"{_cpu_name(_cpuinfo())} ({threads} thread{'s' if threads != 1 else ''})"
    return f"{world_size} x {name}" if world_size > 1 else name


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo (empty where there is none: macOS, Windows)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n\n")[0].splitlines()
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, _, value in (ln.partition(":") for ln in lines)}


def _cpu_name(info: dict[str, str]) -> str:
    return info.get("model name") or platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The CPU's vector extensions that decide speed here: AVX2, AVX-512, AVX512-BF16, AMX."""
    flags = set(_cpuinfo().get("flags", "").split())
    names = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX"}
    return [label for flag, label in names.items() if flag in flags]


def describe_cpu() -> str:
    """E.g. "AMD EPYC, family 25 model 1, 2 CPUs, one per core; AVX2, FMA": what benchmark figures
    need to say where they came from (a cloud CPU's name alone often hides its generation, and two
    CPUs on one core, hyperthreads, share its arithmetic)."""
    info = _cpuinfo()
    parts = [_cpu_name(info)]
    if "cpu family" in info:
        parts.append(f"family {info['cpu family']} model {info.get('model', '?')}")
    cpus, siblings, cores = os.cpu_count() or 1, info.get("siblings", ""), info.get("cpu cores", "")
    if siblings.isdigit() and cores.isdigit() and int(cores):
        per_core = int(siblings) // int(cores)
        parts.append(f"{cpus} CPUs, " + (f"{per_core} per core (hyperthreads)" if per_core > 1 else "one per core"))
    else:
        parts.append(f"{cpus} CPUs")
    return ", ".join(parts) + "; " + (", ".join(cpu_features()) or "vector extensions unknown")


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX); elsewhere
    bf16 autocast is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def keep_freed_memory(device: torch.device) -> bool:
    """On a CPU with glibc (most Linux), let freed tensors' memory serve the next ones.

    glibc gives each allocation over 32 MB pages of its own (mmap) and hands them back to the
    system when it is freed, so the next step's tensor of that size pays a page fault every 4 kB,
    each page zeroed by the kernel. An fp32 training step at the seed preset makes ~460 MB of
    such tensors (the linear layers' outputs): writing them the first time took a tenth of the step.
    Served from the heap and kept there, they are reused: through train.py 12-17% more tokens a
    second in fp32 and 8-16% in bf16 (2-core EPYC), the same numbers, 2-6% more peak memory.
    PyTorch's CPU tuning guide suggests jemalloc or tcmalloc for this; mallopt needs nothing
    installed. It holds for the whole process. Returns whether it was applied.
    """
    if device.type != "cpu" or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's name; musl and others keep their own allocators
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Compute capability 8.0+ (Ampere, Hopper...). Not ``torch.cuda.is_bf16_supported()``: it
    counts emulation and answers True on a T4 (7.5), where bf16 autocast is slower than fp16."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype. ``auto``: bf16 on GPUs that have it (Ampere+) and on CPUs with native
    bf16; fp16 (with a gradient scaler) on older GPUs such as Kaggle's T4; fp32 otherwise."""
    if name != "auto":
        dtype = getattr(torch, name)
        if dtype == torch.float16 and device.type == "cpu":
            raise DeviceError("--dtype float16 is for GPUs; on the CPU use bfloat16 or float32")
        if dtype == torch.bfloat16 and device.type == "cuda" and not cuda_has_native_bf16(device):
            raise DeviceError(f"{torch.cuda.get_device_name(device)} has no native bfloat16 (it needs compute "
                              "capability 8.0, Ampere or newer; bf16 would be emulated and slow): "
                              "use --dtype float16 (or auto)")
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision for the forward pass; weights and optimizer state stay in fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
