"""Device and precision choices, with the GPU's properties faked (no GPU here or in CI)."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gpt40k.errors import DeviceError
from gpt40k.device import keep_freed_memory, resolve_dtype

CUDA = torch.device("cuda", 0)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A GPU of the given compute capability; torch.cuda.is_bf16_supported() says True, as it does
    on a T4 in torch 2.13 (it counts emulation)."""
    def make(capability):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"GPU {capability}")
    return make


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16),  # Kaggle's T4
                                                  ((7, 0), torch.float16),  # V100
                                                  ((8, 0), torch.bfloat16),  # A100
                                                  ((9, 0), torch.bfloat16)])  # H100
def test_auto_dtype_follows_compute_capability(fake_gpu, capability, expected):
    fake_gpu(capability)
    assert resolve_dtype("auto", CUDA) == expected


def test_bf16_asked_for_on_a_t4_is_refused_with_the_way_out(fake_gpu):
    fake_gpu((7, 5))
    with pytest.raises(DeviceError, match="capability 8.0.*--dtype float16"):
        resolve_dtype("bfloat16", CUDA)


def test_fp16_on_the_cpu_is_refused():
    with pytest.raises(DeviceError, match="float16 is for GPUs"):
        resolve_dtype("float16", torch.device("cpu"))


def test_cpu_description_names_generation_hyperthreads_and_extensions(tmp_path, monkeypatch):
    """Benchmark figures say which CPU they came from: an AVX2-only EPYC whose two CPUs are one core's
    hyperthreads reads differently from one with AVX512-BF16 and two cores."""
    from gpt40k import device

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
                       "model name\t: AMD EPYC 7B13\nsiblings\t: 2\ncpu cores\t: 1\nflags\t\t: fpu avx2 fma\n\n"
                       "processor\t: 1\nflags\t\t: other\n")
    fields = device._cpuinfo(str(cpuinfo))
    assert fields["cpu family"] == "25" and fields["flags"] == "fpu avx2 fma"  # the first CPU's block only
    assert device._cpuinfo(str(tmp_path / "missing")) == {}
    monkeypatch.setattr(device, "_cpuinfo", lambda: fields)
    monkeypatch.setattr(device.os, "cpu_count", lambda: 2)
    assert device.cpu_features() == ["AVX2", "FMA"]
    assert device.describe_cpu() == "AMD EPYC 7B13, family 25 model 1, 2 CPUs, 2 per core (hyperthreads); AVX2, FMA"
    monkeypatch.setattr(device, "_cpuinfo", lambda: {})  # no /proc/cpuinfo: still a line, never an error
    assert device.describe_cpu().endswith("2 CPUs; vector extensions unknown")


# In a process of its own: the setting holds for the whole process. hblkhd: bytes in blocks of their own pages.
KEEP_FREED_MEMORY = """
import ctypes, torch
from gpt40k.device import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                     "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tensor = torch.empty(16 << 20)  # 64 MB
before = libc.mallinfo2().hblkhd >> 20
del tensor
applied = keep_freed_memory(torch.device("cpu"))
tensor = torch.empty(16 << 20)
print(applied, before, libc.mallinfo2().hblkhd >> 20)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_a_cpu_run_serves_large_tensors_from_the_heap_and_keeps_them_there():
    """Without it each step's large tensors come in fresh pages, each faulted in and zeroed by the kernel."""
    out = subprocess.run([sys.executable, "-c", KEEP_FREED_MEMORY], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    applied, before_mb, after_mb = out.stdout.split()
    assert applied == "True" and int(before_mb) >= 64 and int(after_mb) < 64
    assert not keep_freed_memory(torch.device("meta"))  # only for CPU runs (GPUs have their own allocator)
