"""Device and precision choices, with the GPU's properties faked (no GPU here or in CI)."""

import pytest
import torch

from gpt40k.errors import DeviceError
from gpt40k.runtime import resolve_dtype

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
