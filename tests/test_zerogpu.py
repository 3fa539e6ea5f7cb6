"""ZeroGPU: each request asks for the seconds its length needs, and a model this small runs on the CPU."""

import pytest

pytest.importorskip("spaces")
pytest.importorskip("gradio")

import spaces  # noqa: E402

from gpt40k.app import page, zerogpu  # noqa: E402
from gpt40k.app.registry import ModelRegistry  # noqa: E402


@pytest.fixture
def recorded(monkeypatch):
    """spaces.GPU as on ZeroGPU, recording each duration it is given."""
    durations = []

    def fake_gpu(fn=None, *, duration=None, size=None):
        durations.append(duration)
        return lambda f: f

    monkeypatch.setattr(spaces, "GPU", fake_gpu)
    monkeypatch.setattr(zerogpu, "zero_gpu_active", lambda: True)
    monkeypatch.setattr(page, "zero_gpu_active", lambda: True)
    return durations


def test_every_handler_asks_for_what_its_length_needs(recorded, trained_run):
    registry = ModelRegistry()
    registry.request(str(trained_run))
    registry.device = "cuda"  # as on ZeroGPU when the GPU is worth it
    page.make_handlers(registry)
    page.api_generate(registry)
    assert len(recorded) == 6 and all(callable(d) for d in recorded)
    write, knockout, branch, compare, timeline, api = recorded
    assert write("m", "The Emperor", 300, 0.8, 0, 1.0, 0) == 6  # 5 s floor + 2 x 0.3 s
    assert knockout("m", "The Emperor", 2000, 0.8, 0, 1.0, 0) == 9
    assert write("m", "The Emperor", 2000, 0.8, 0, 1.0, 0) == 9
    assert branch("m", 300, 0.8, 0, 1.0, 0) == 6
    assert compare("a", "b", "p", 300, 0.8, 0) == 6 and timeline("m", "step 1", "p", 1000, 0.8, 0) == 7
    assert api("The Emperor", 300) == 6 and api("x", "not a number") == 9 and api("x", 10**30) == 9
    assert max(zerogpu.gpu_seconds(n) for n in range(1, 2001)) < 60


def test_a_small_model_stays_on_the_cpu_a_large_one_gets_the_gpu(recorded, trained_run):
    assert not zerogpu.use_gpu(1_866_337)  # the shipped model: the CPU writes the default 300 characters sooner
    assert zerogpu.use_gpu(20_000_000)  # the seed's first, 20M-parameter model: the GPU does
    registry = ModelRegistry()
    registry.request(str(trained_run))
    assert registry.choose_device() == "cpu"
    assert registry.get(registry.default).model.device.type == "cpu"
    page.make_handlers(registry)
    assert recorded == []  # on the CPU no handler is decorated: no visitor's GPU quota is touched


def test_off_zerogpu_nothing_is_decorated():
    assert not zerogpu.zero_gpu_active()
    registry = ModelRegistry()
    registry.device = "cuda"
    fn = lambda: None  # noqa: E731
    assert page.gpu_decorator(registry)(1)(fn) is fn
