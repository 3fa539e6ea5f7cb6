"""The page's handlers and the model registry, called directly (test_browser.py drives the page)."""

import json
import shutil

import pytest
import torch

from gpt40k.app.page import api_generate, build_ui, make_handlers
from gpt40k.app.registry import ModelRegistry, find_snapshots
from gpt40k.errors import GPT40kError


@pytest.fixture
def registry(trained_run, tmp_path) -> ModelRegistry:
    """A 'shipped' folder with the tiny run's best checkpoint and two snapshots beside it."""
    shipped = tmp_path / "checkpoints"
    shutil.copytree(trained_run / "best", shipped / "tiny")
    for step, val in ((10, 3.1), (50, 2.2)):
        snap = shipped / "tiny/snapshots" / f"step-{step:06d}"
        shutil.copytree(trained_run / "best", snap)
        (snap / "snapshot.json").write_text(json.dumps({"step": step, "val_loss": val}))
    r = ModelRegistry()
    r.add_shipped(shipped)
    return r


def run_to_end(gen):
    values = list(gen)
    return values[:-1], values[-1]


def test_registry_lists_snapshots_and_pairs_early_with_late(registry):
    registry.request(None)
    assert registry.default == "tiny"
    assert registry.choices == ["tiny", "tiny @ step 10 · val loss 3.100", "tiny @ step 50 · val loss 2.200"]
    assert registry.early_and_late() == ("tiny @ step 10 · val loss 3.100", "tiny")
    assert [label for label, _ in registry.timeline("tiny")] == [
        "step 10 · val loss 3.100", "step 50 · val loss 2.200", "trained (final)"]
    assert registry.timeline("tiny @ step 50 · val loss 2.200") == registry.timeline("tiny")


def test_snapshots_of_a_run_folder_are_found_from_its_best_checkpoint(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run / "best", run / "best")
    assert find_snapshots(run / "best") == []
    shutil.copytree(trained_run / "best", run / "snapshots/step-000040")
    (run / "snapshots/step-000040/snapshot.json").write_text(json.dumps({"step": 40, "val_loss": 1.5}))
    (run / "snapshots/step-000080").mkdir()  # half-written: no snapshot.json, skipped
    assert [s.step for s in find_snapshots(run / "best")] == [40]


def test_registry_falls_back_to_the_shipped_model_and_says_why(registry):
    registry.request("nobody/not-there@main")
    assert registry.default == "tiny"
    assert "Could not load the model 'nobody/not-there@main'" in registry.warning
    assert registry.get(None).model.config.n_layer == 2


def test_registry_without_any_model_is_a_clear_error(tmp_path):
    registry = ModelRegistry()
    registry.add_shipped(tmp_path / "empty")
    with pytest.raises(GPT40kError, match="no model to show"):
        registry.request(None)


def test_the_card_shows_its_loss_curve_inline(registry):
    registry.request(None)
    lm = registry.get("tiny")
    assert (lm.folder / "loss_curve.png").is_file() and "(loss_curve.png)" in (lm.folder / "README.md").read_text()
    card = lm.card
    assert "(loss_curve.png)" not in card and "![Training and validation loss](data:image/png;base64,iVBOR" in card


def test_write_streams_a_growing_list_then_a_small_end(registry):
    registry.request(None)
    write, *_ = make_handlers(registry)
    chunks, end = run_to_end(write("tiny", "The emperor", 60, 0.8, 0, 1.0, 3))
    assert all(isinstance(c, list) and c[0] == chunks[0][0] for c in chunks)  # every update: the start...
    steps = [json.loads(m)["i"] for c in chunks for m in c[1:]]
    assert steps == list(range(1, 61))  # ...then only the steps new since the last one
    header = json.loads(chunks[0][0])
    assert header["prompt"] == "The emperor" and header["layers"] == 2
    assert end["kind"] == "end" and end["run"] == header["run"] and end["steps"] == 60


def test_write_reports_clamped_values_in_its_notes(registry):
    registry.request(None)
    write, *_ = make_handlers(registry)
    chunks, end = run_to_end(write("tiny", "The", 10**9, -3, 0, 1.0, 1))
    assert "Length can be at most 2000: using 2000 characters." in end["notes"]
    assert "Temperature must be 0 or more: using 0." in end["notes"]
    assert end["steps"] == 2000


class Event:
    def __init__(self, data):
        self._data = data


@pytest.mark.parametrize("data", [None, {}, {"text": "a", "char": "ab", "keep": 0}, {"text": 5, "char": "a", "keep": 0},
                                  {"text": "a", "char": "a", "keep": -1}, {"text": "a", "char": "a", "keep": "1"}])
def test_malformed_branch_requests_get_a_message(registry, data):
    registry.request(None)
    _, branch, *_ = make_handlers(registry)
    out = list(branch("tiny", 10, 0.8, 0, 1.0, 0, Event(data)))
    assert out == [{"kind": "error", "message": out[0]["message"]}] and "malformed" in out[0]["message"]


def test_branch_continues_from_the_forced_character(registry):
    registry.request(None)
    _, branch, *_ = make_handlers(registry)
    chunks, end = run_to_end(branch("tiny", 20, 0.8, 0, 1.0, 0, Event({"text": "The emp", "char": "e", "keep": 4})))
    header = json.loads(chunks[-1][0])
    assert header["prompt"] == "The empe" and header["branch"] and header["keep"] == 4 and end["steps"] == 20
    out = list(branch("tiny", 20, 0.8, 0, 1.0, 0, Event({"text": "The", "char": "€", "keep": 0})))
    assert "does not know the character" in out[0]["message"]


def test_compare_streams_both_models_with_the_same_prompt_and_seed(registry):
    """Each side streams into its own live view, and ends with how well its model reads its own text."""
    registry.request(None)
    compare = make_handlers(registry).compare
    outputs = list(compare("tiny", "tiny @ step 10 · val loss 3.100", "The emperor", 50, 0.8, 3))
    sides = list(zip(*outputs))
    ends = [[v for v in side if isinstance(v, dict) and v.get("kind") == "end"] for side in sides]
    assert [len(e) for e in ends] == [1, 1] and ends[0][0]["steps"] == ends[1][0]["steps"] == 50
    texts = []
    for side in sides:
        batches = [v for v in side if isinstance(v, list)]
        start = json.loads(batches[0][0])
        assert start["prompt"] == "The emperor" and start["settings"]["seed"] == 3
        texts.append("".join(json.loads(m)["t"] for b in batches for m in b[1:]))
    assert texts[0] == texts[1] and len(texts[0]) == 50  # the snapshot is the same weights here
    loss, chars = ends[0][0]["own"]
    assert chars == 50 and 0 < loss < 10 and ends[1][0]["own"] == ends[0][0]["own"]


def test_a_link_fills_the_controls_and_says_what_it_changed(registry):
    from gpt40k.app.page import read_link

    registry.request(None)
    assert read_link({"seed": "3"}, registry.choices, "tiny") == (None, [])  # no prompt: no run
    values, notes = read_link({"prompt": "The walls", "chars": "90", "temperature": "0.9", "top_k": "30",
                               "top_p": "0.95", "seed": "5", "__theme": "dark"}, registry.choices, "tiny")
    assert values == {"model": "tiny", "prompt": "The walls", "max_new": 90, "temperature": 0.9, "top_k": 30,
                      "top_p": 0.95, "seed": 5} and notes == []
    values, notes = read_link({"prompt": "x", "seed": "-5", "chars": "lots", "model": "someone/else"},
                              registry.choices, "tiny")
    assert (values["seed"], values["max_new"], values["model"]) == (0, 300, "tiny")
    assert notes == ["From the link: Length 'lots' is not a number: using 300 characters.",
                     "From the link: Seed must be 0 or more: using 0.",
                     "From the link: The link's model “someone/else” is not on this page: using tiny."]


def test_the_write_tab_starts_with_an_example_the_page_can_replay(registry):
    from gpt40k.app.page import EXAMPLE_CHARS, EXAMPLES, example_trace
    from gpt40k.app.stepstream import TRACE_KEYS

    registry.request(None)
    trace = example_trace(registry.get("tiny"), None)
    lm = registry.get("tiny")
    assert tuple(trace) == TRACE_KEYS and trace["run"] == "example"
    assert trace["prompt"] == lm.tokenizer.encode_prompt(EXAMPLES[0], max_chars=lm.model.config.block_size).text
    assert len(trace["steps"]) == EXAMPLE_CHARS and trace["steps"][0]["l"] and trace["steps"][0]["a"]
    positions = len(trace["prompt"]) + EXAMPLE_CHARS - 1
    assert [r[0] for r in trace["rows"]] == list(range(positions))  # each character read
    assert "press Generate" in trace["notes"][0] and trace["settings"]["seed"] == 0


def test_timeline_writes_with_the_chosen_snapshot(registry):
    registry.request(None)
    handlers = make_handlers(registry)
    timeline, switch_model = handlers.timeline, handlers.switch_model
    snapshot = registry.get("tiny @ step 50 · val loss 2.200")  # the fixture's snapshots are the final weights:
    with torch.no_grad():  # make this one write differently, then see its text on the page
        snapshot.model.lm_head.bias[snapshot.tokenizer.encode("e")[0]] += 8.0

    def written(chunks):
        return "".join(json.loads(m)["t"] for c in chunks for m in c[1:])

    chunks, end = run_to_end(timeline("tiny", "step 50 · val loss 2.200", "The", 30, 0.8, 1))
    final, _ = run_to_end(timeline("tiny", "trained (final)", "The", 30, 0.8, 1))
    assert end["steps"] == 30 and written(chunks).count("e") > 20 and written(final).count("e") < 15
    card, snapshots, about = switch_model("tiny")
    assert "**The model, tiny:** a character-level GPT of 28,966 parameters" in about
    assert "parameters" in card and snapshots["choices"][-1] in ("trained (final)", ("trained (final)", "trained (final)"))


def test_api_returns_the_text_and_the_notes(registry):
    registry.request(None)
    *chunks, final = api_generate(registry)("The “emperor”", 30, 0.8, 0, 1.0, 2)
    assert final["text"].startswith("The") and len(final["text"]) >= 30
    assert any("Removed" in n or "Replaced" in n for n in final["notes"])


def test_the_page_builds_with_its_api(registry):
    """The one public endpoint takes exactly the documented arguments (the gr.Request is Gradio's, not the caller's)."""
    registry.request(None)
    info = build_ui(registry).get_api_info()
    assert list(info["named_endpoints"]) == ["/generate"]
    params = [p["parameter_name"] for p in info["named_endpoints"]["/generate"]["parameters"]]
    assert params == ["prompt", "max_new_chars", "temperature", "top_k", "top_p", "seed", "knock_out"]


def test_a_model_already_on_offer_is_not_listed_twice(registry, tmp_path):
    registry.request(str(tmp_path / "checkpoints" / "tiny"))
    assert registry.default == "tiny" and registry.choices.count("tiny") == 1 and len(registry.choices) == 3


def test_a_hub_models_step_branches_become_its_timeline(hub, trained_run):
    from gpt40k.hub.client import push_folder

    for branch in (None, "step-20", "step-100"):
        push_folder(trained_run / "best", "alice/tiny", commit_message="x", branch=branch)
    registry = ModelRegistry()
    registry.request("alice/tiny")
    assert registry.default == "alice/tiny"
    assert [label for label, _ in registry.timeline("alice/tiny")] == [
        "step 20 (Hub branch)", "step 100 (Hub branch)", "trained (final)"]
    assert registry.get("alice/tiny @ step 100 (Hub branch)").model.config.n_layer == 2


def test_knock_out_writes_the_same_request_again_without_the_heads(registry):
    registry.request(None)
    handlers = make_handlers(registry)
    chunks, end = run_to_end(handlers.knockout("tiny", "The emperor", 40, 0.8, 0, 1.0, 3, Event({"heads": "L1H1,L2H2"})))
    header = json.loads(chunks[0][0])
    assert header["knockout"] == "L1H1,L2H2" and not header["branch"]
    assert len(header["roles"]) == 4 and all(isinstance(score, float) for _, score in header["roles"])
    assert "Knocked out 2 of 4 heads: L1H1, L2H2." in end["notes"]
    before, after, chars = end["loss"]
    assert chars == 1000 and before != after and before == round(registry.passage_loss("tiny"), 4)
    text = "".join(json.loads(m)["t"] for c in chunks for m in c[1:])
    *_, api = api_generate(registry)("The emperor", 40, 0.8, 0, 1.0, 3, "L1H1,L2H2")
    assert api["text"] == "The emperor" + text and api["notes"][0].startswith("Knocked out 2 of 4")
    *_, plain = api_generate(registry)("The emperor", 40, 0.8, 0, 1.0, 3)
    assert plain["text"] != api["text"] and plain["notes"] == []  # no head knocked out: the original
    chunks, end = run_to_end(handlers.knockout("tiny", "The emperor", 10, 0.8, 0, 1.0, 3,
                                               Event({"heads": "L1H1", "keep_only": True})))
    assert json.loads(chunks[0][0])["knockout"] == "L1H2,L2H1,L2H2"


@pytest.mark.parametrize("data, message", [({"heads": "L9H1"}, "layers 1-2 and heads 1-2"), ({"heads": "foo"}, "not a head"),
                                           ({"heads": ""}, "no head chosen"), ({}, "malformed"),
                                           ({"heads": 5}, "malformed")])
def test_bad_knock_outs_get_a_message(registry, data, message):
    registry.request(None)
    out = list(make_handlers(registry).knockout("tiny", "The", 10, 0.8, 0, 1.0, 0, Event(data)))
    assert len(out) == 1 and out[0]["kind"] == "error" and message in out[0]["message"]
    *_, api = api_generate(registry)("The", 10, 0.8, 0, 1.0, 0, "L9H1")
    assert api["text"] == "" and "layers 1-2 and heads 1-2" in api["notes"][0]


def test_the_role_table_follows_the_snapshot(registry):
    registry.request(None)
    show_roles = make_handlers(registry).show_roles
    final, early = show_roles("tiny", "trained (final)"), show_roles("tiny", "step 10 · val loss 3.100")
    for table in (final, early):
        assert table.count("\n| L") == 4 and "| head | prev char | self |" in table and "**" in table
    assert final.startswith("**tiny**") and early.startswith("**tiny @ step 10")
    assert registry.reference("tiny @ step 10 · val loss 3.100") == registry.reference("tiny")  # one text per run
    demo = build_ui(registry)  # before anyone touches it, the table is the one of the snapshot the radio shows
    radio, = (b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "gpt40k-snapshot")
    table, = (b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "gpt40k-roles")
    assert radio.value == "step 10 · val loss 3.100" and table.value == early
