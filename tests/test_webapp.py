"""The page's handlers and model registry, called directly (the browser test drives the page itself)."""

import pytest

from gpt40k.errors import GPT40kError
from gpt40k.webapp import ModelRegistry, build_ui, make_handlers


def registry_with(trained_run, tmp_path) -> ModelRegistry:
    shipped = tmp_path / "checkpoints"
    shipped.mkdir()
    (shipped / "tiny").symlink_to(trained_run / "best", target_is_directory=True)
    registry = ModelRegistry()
    registry.add_shipped(shipped)
    return registry


def test_registry_falls_back_to_the_shipped_model_and_says_why(trained_run, tmp_path):
    registry = registry_with(trained_run, tmp_path)
    registry.request("nobody/not-there@main")
    assert registry.default == "shipped: tiny"
    assert "Could not load the model 'nobody/not-there@main'" in registry.warning
    assert registry.get(None).model.config.n_layer == 2


def test_registry_without_any_model_is_a_clear_error(tmp_path):
    registry = ModelRegistry()
    registry.add_shipped(tmp_path / "empty")
    with pytest.raises(GPT40kError, match="no model to show"):
        registry.request(None)


def test_compare_runs_the_same_prompt_and_seed_through_two_models(trained_run, tmp_path):
    registry = registry_with(trained_run, tmp_path)
    registry.request(str(trained_run / "latest"))
    *_, switch_model, compare = make_handlers(registry)
    a, b = compare("shipped: tiny", str(trained_run / "latest"), "The emperor", 50, 0.8, 3)
    assert a.startswith("The emperor") and len(a) == len("The emperor") + 50
    assert a == b  # best and latest are the same weights in this run (val kept improving)
    card, curve, layers = switch_model("shipped: tiny")
    assert "parameters" in card and curve.endswith("loss_curve.png")


def test_the_page_builds(trained_run, tmp_path):
    registry = registry_with(trained_run, tmp_path)
    registry.request(None)
    demo = build_ui(registry)
    names = {d.api_name for d in demo.fns.values() if d.api_name}
    assert "generate" in names
