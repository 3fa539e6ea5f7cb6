"""The Gradio page: the prompt and its controls, the live view (drawn in the browser by
static/live/, ES modules, from the step stream), the Model tab with the card, the training timeline and
Compare, and the `generate` API endpoint."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from ..errors import ConfigError, GPT40kError
from ..interpret import ROLES, ablated, head_name, heads_to_knock_out, loss_on, strongest_role
from ..model.model import GPT
from ..model.tokenizer import MAX_PROMPT_CHARS
from .limits import MAX_RUNNING, ClientLimits
from .livejs import live_script
from .registry import REFERENCE_CHARS, LoadedModel, ModelRegistry
from .request import LIMITS, GenerationRequest, clamp_request
from .stepstream import StepStream, error_message
from .transcript import generate as write_steps  # `generate` is the API's name (and its MCP tool's)
from .zerogpu import gpu_function, zero_gpu_active

log = logging.getLogger("gpt40k.app")
STATIC = Path(__file__).with_name("static")
EXAMPLES = ["In the grim darkness of the far future", "The Emperor protects", "Brother-Captain, the walls",
            "And the daemon spoke:", "The war-machines of Mars", "The iron heel of the Oligarchy"]
YIELD_EVERY_S = 0.03  # how often new steps leave the server (the page paces what it shows itself)
EXAMPLE_CHARS = 120  # the example run the Write tab shows before the visitor's first
EXAMPLE_NOTE = ("An example, written when the page started (seed 0, temperature 0.8): press Generate to write "
                "your own.")
# A link's parameters (static/live/share.js writes them) and the request fields they fill.
LINK_NUMBERS = {"chars": "max_new_chars", "temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
                "seed": "seed"}
PAGE_CSS = """
#gpt40k-title h1 {font-size: 1.35rem; margin: 0; display: inline;}
#gpt40k-title p {margin: 0 0 0 .6em; color: #57534e; display: inline;}
.gpt40k-warning {border-left: 4px solid #b91c1c; padding: .4em .8em; background: #fff1f1; color: #5f1111;}
/* Gradio holds a slider's track to 112px at least: beside "0.05", Top-p's "1" fell outside its box */
#gpt40k-settings input[type=range] {min-width: 48px;}
/* Gradio's primary red under white text is 3.8:1; this red is 6.5:1 */
#gpt40k-generate.primary, #gpt40k-generate.primary:hover {background: #b91c1c; border-color: #b91c1c; color: #fff;}
/* Gradio's own pale labels and footer, at 4.5:1 or more */
#gpt40k-examples .label {color: #b91c1c;}
footer :is(.show-api, .built-with, .settings) {color: #57534e !important;}
/* the card's code: the highlighter's pale orange is 2.1:1 on its grey */
#gpt40k-card .token {color: #292524 !important;}
#gpt40k-card :is(.token.parameter, .token.variable, .token.keyword, .token.builtin) {color: #9a3412 !important;}
#gpt40k-card :is(.token.string, .token.number) {color: #166534 !important;}
#gpt40k-card .token.comment {color: #57534e !important;}
/* On a phone the first prompt wraps, but Gradio sizes the box for one line when the page loads */
@media (max-width: 640px) {#gpt40k-prompt textarea {min-height: calc(2lh + 20px);}}
"""


def live_view(stop_id: str, pace: int = 35, elem_id: str | None = None, *, prompt_id: str = "",
              link: bool = False, compare: bool = False) -> gr.HTML:
    """The live view component. ``stop_id``: the Stop button it freezes at once when clicked;
    ``prompt_id``: the prompt whose Enter brings the keyboard to the view; ``link``: its runs are the
    page's address; ``compare``: the narrow view of Compare (the text and the chosen head's map)."""
    return gr.HTML(value=None, html_template=(STATIC / "live.html").read_text(encoding="utf-8"),
                   js_on_load=live_script(), apply_default_css=False, stop_id=stop_id, pace=pace, elem_id=elem_id,
                   prompt_id=prompt_id, link="on" if link else "off", mode="compare" if compare else "full")


def page_css() -> str:
    return PAGE_CSS + (STATIC / "live.css").read_text(encoding="utf-8")


def stream_run(lm: LoadedModel, req: GenerationRequest, *, branch: tuple[str, str] | None = None, keep: int = 0,
               model: GPT | None = None, roles: list | None = None, knockout: str = "", notes: list[str] | None = None,
               end_loss=None, own: bool = False) -> Iterator[list[str] | dict]:
    """The step stream of one run (see stepstream.py): batches [start, new steps...], then the end.
    ``model``: another model than ``lm.model`` with its tokenizer (heads knocked out); ``roles``: the
    grid's badges; ``end_loss()``: the end message's loss line (a knock-out run); ``own``: the end
    message says how well the model reads the text it wrote (Compare)."""
    cfg = lm.model.config
    messages = StepStream(cfg.n_layer, cfg.n_head, branch=branch is not None, keep=keep, roles=roles,
                          knockout=knockout, model=lm.name)
    pending: list[str] = []
    transcript, last = None, 0.0
    try:
        for transcript, event in write_steps(model or lm.model, lm.tokenizer, req, branch=branch, notes=notes,
                                             explain=True):
            pending.append(messages.step(event))
            if time.monotonic() - last >= YIELD_EVERY_S:
                last = time.monotonic()
                yield [messages.start(transcript), *pending]
                pending = []
        loss = end_loss() if end_loss is not None and transcript is not None else None
        own_line = own_loss(model or lm.model, lm, transcript) if own and transcript is not None else None
    except Exception as e:  # never a traceback on the page
        log.exception("generation failed")
        yield error_message(f"Generation failed: {e}")
        return
    if transcript is not None:
        if pending:
            yield [messages.start(transcript), *pending]
        yield messages.end(transcript, loss=loss, own=own_line)


def own_loss(model: GPT, lm: LoadedModel, transcript) -> list | None:
    """[nats a character, characters]: the written text as read back by the model that wrote it."""
    if not transcript.steps:
        return None
    ids = lm.tokenizer.encode(transcript.text)
    return [round(loss_on(model, ids, scored_from=len(ids) - len(transcript.steps)), 4), len(transcript.steps)]


def example_trace(lm: LoadedModel, roles: list | None) -> dict | None:
    """A short run of the first example prompt, as a trace: the Write tab is not empty before a run."""
    cfg = lm.model.config
    messages = StepStream(cfg.n_layer, cfg.n_head, run="example", roles=roles, model=lm.name)
    transcript = None
    try:
        for transcript, _ in write_steps(lm.model, lm.tokenizer, GenerationRequest(EXAMPLES[0], EXAMPLE_CHARS),
                                         notes=[EXAMPLE_NOTE], explain=True):
            pass
    except Exception:  # the page starts empty rather than not at all
        log.exception("the example run failed")
        return None
    return messages.trace(transcript) if transcript is not None else None


def read_link(query, choices: list[str], default: str) -> tuple[dict | None, list[str]]:
    """The run a page address asks for (``query``: its parameters, as share.js writes them): the
    controls' values by name, or None when it names no prompt; and notes on what had to change."""
    if "prompt" not in query:
        return None, []
    given = {field: query[name] for name, field in LINK_NUMBERS.items() if name in query}
    req, notes = clamp_request(GenerationRequest(query["prompt"][:MAX_PROMPT_CHARS], **given))
    model = query.get("model") or default
    if model not in choices:
        notes.append(f"The link's model “{model[:80]}” is not on this page: using {default}.")
        model = default
    values = {"model": model, "prompt": req.prompt, "max_new": req.max_new_chars, "temperature": req.temperature,
              "top_k": req.top_k, "top_p": req.top_p, "seed": req.seed}
    return values, [f"From the link: {n}" for n in notes]


def badges(registry: ModelRegistry, name: str) -> list | None:
    """Each head's strongest role, layer by layer ([[name, score], ...]), for the grid; None if it fails."""
    try:
        roles = registry.roles(name)
    except Exception:  # a model too small or strange to score: the grid goes without badges
        log.exception("head roles of %s", name)
        return None
    lm = registry.get(name)
    return [list(strongest_role(roles[(layer, head)])) for layer in range(1, lm.model.config.n_layer + 1)
            for head in range(1, lm.model.config.n_head + 1)]


def roles_table(registry: ModelRegistry, name: str) -> str:
    """The Model tab's table of every head's role scores, the strongest of each in bold."""
    try:
        roles = registry.roles(name)
    except Exception as e:
        return f"The heads could not be scored: {e}"
    names = list(ROLES)
    lines = [f"**{name}**, on {REFERENCE_CHARS:,} characters of its run's trained model's own writing. "
             + " ".join(f"*{r}*: {ROLES[r]}." for r in names),
             "", "| head | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for (layer, head), scores in sorted(roles.items()):
        best, _ = strongest_role(scores)
        cells = [f"**{scores[r]:.2f}**" if r == best else f"{scores[r]:.2f}" for r in names]
        lines.append(f"| L{layer}H{head} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gpu_decorator(registry: ModelRegistry):
    """Handlers run under ``@spaces.GPU`` only where the registry put the models on a ZeroGPU GPU."""
    if registry.device != "cuda" or not zero_gpu_active():
        return lambda chars_arg: (lambda fn: fn)
    return lambda chars_arg: (lambda fn: gpu_function(fn, chars_arg))


BUSY = (f"You already have {MAX_RUNNING} texts being written: wait for one to finish (or stop it), then "
        "try again.")


def model_line(lm: LoadedModel) -> str:
    return f"**The model, {lm.name}:** {lm.description}"


def knocked_out_model(lm: LoadedModel, spec: str | None, keep_only: bool = False):
    """(the model with the heads of ``spec`` ("L2H3,L1H1") knocked out, or all but them with
    ``keep_only``: a copy, since other visitors share ``lm.model``; the heads knocked out; a note
    saying so). The model itself, [] and [] when ``spec`` names no head."""
    cfg = lm.model.config
    heads = heads_to_knock_out(spec if isinstance(spec, str) else None, cfg.n_layer, cfg.n_head, keep_only)
    if not heads:
        return lm.model, [], []
    said = f" (kept only {spec.strip()})." if keep_only else f": {', '.join(head_name(h) for h in heads)}."
    return ablated(lm.model, heads), heads, [f"Knocked out {len(heads)} of {cfg.n_layer * cfg.n_head} heads{said}"]


class Handlers(NamedTuple):
    write: Callable
    branch: Callable
    compare: Callable
    timeline: Callable
    switch_model: Callable
    knockout: Callable
    show_roles: Callable
    from_link: Callable
    write_link: Callable
    example: Callable


LINK_CONTROLS = ("model", "prompt", "max_new", "temperature", "top_k", "top_p", "seed")  # what a link fills


def make_handlers(registry: ModelRegistry, limits: ClientLimits | None = None) -> Handlers:
    on_gpu = gpu_decorator(registry)
    fair = (limits or ClientLimits()).fair

    def write_with(model_name, prompt, max_new, temperature, top_k, top_p, seed, notes=None):
        try:
            lm = registry.get(model_name)
        except Exception as e:
            yield error_message(f"The model could not be loaded: {e}")
            return
        yield from stream_run(lm, GenerationRequest(prompt, max_new, temperature, top_k, top_p, seed),
                              roles=badges(registry, lm.name), notes=notes)

    @fair(error_message(BUSY))
    @on_gpu(2)
    def write(model_name, prompt, max_new, temperature, top_k, top_p, seed, request: gr.Request = None,
              notes: list | None = None):
        yield from write_with(model_name, prompt, max_new, temperature, top_k, top_p, seed, notes)

    def from_link(request: gr.Request = None):
        """The controls filled from the page's address (a shared run), and what the run needs to know."""
        query = dict(request.query_params) if request is not None else {}
        values, notes = read_link(query, registry.choices, registry.default)
        if values is None:
            return [gr.update()] * len(LINK_CONTROLS) + [None]
        return [values[name] for name in LINK_CONTROLS] + [{"notes": notes}]

    @functools.cache
    def example():  # made once, at start-up (build_ui): the same for every visitor
        lm = registry.get(registry.default)
        return example_trace(lm, badges(registry, lm.name))

    def write_link(link, model_name, prompt, max_new, temperature, top_k, top_p, seed, request: gr.Request = None):
        """A shared run, written when its link is opened; without one, the example run. (Sent when the
        page has loaded, not in its config: a run's attention is hundreds of KB.)"""
        if not link:
            yield example() or gr.skip()
            return
        yield from write(model_name, prompt, max_new, temperature, top_k, top_p, seed, request, notes=link["notes"])

    @fair(error_message(BUSY))
    @on_gpu(2)
    def knockout(model_name, prompt, max_new, temperature, top_k, top_p, seed, evt: gr.EventData,
                 request: gr.Request = None):
        """The page asks: the same run again with ``heads`` knocked out (or all but them, ``keep_only``)."""
        data = getattr(evt, "_data", None) or {}
        spec, keep_only = data.get("heads"), data.get("keep_only") is True
        if not isinstance(spec, str) or len(spec) > 2000:
            yield error_message("This knock-out request is malformed: choose heads in the grid, then press a button.")
            return
        try:
            lm = registry.get(model_name)
            model, heads, notes = knocked_out_model(lm, spec, keep_only)
            if not heads:
                raise ConfigError("no head chosen: click a head in the grid, then press its “Knock out” button")
        except Exception as e:
            yield error_message(f"Nothing was written: {e}.")
            return

        def loss():  # on the model's own text: what the heads were worth, in nats a character
            return [round(registry.passage_loss(lm.name), 4), round(registry.passage_loss(lm.name, model), 4),
                    len(registry.reference(lm.name)) - 1]

        yield from stream_run(lm, GenerationRequest(prompt, max_new, temperature, top_k, top_p, seed), model=model,
                              roles=badges(registry, lm.name), knockout=",".join(head_name(h) for h in heads),
                              notes=notes, end_loss=loss)

    @fair(error_message(BUSY))
    @on_gpu(1)
    def branch(model_name, max_new, temperature, top_k, top_p, seed, evt: gr.EventData, request: gr.Request = None):
        """The page asks: continue ``text`` + ``char`` (a candidate the visitor clicked)."""
        data = getattr(evt, "_data", None) or {}
        text, char, keep = data.get("text"), data.get("char"), data.get("keep")
        if not (isinstance(text, str) and isinstance(char, str) and len(char) == 1 and isinstance(keep, int)
                and 0 <= keep <= LIMITS["max_new_chars"][1] and len(text) <= MAX_PROMPT_CHARS):
            yield error_message("This branch request is malformed: click a candidate under a finished text.")
            return
        try:
            lm = registry.get(model_name)
        except Exception as e:
            yield error_message(f"The model could not be loaded: {e}")
            return
        if char not in lm.tokenizer.stoi:
            yield error_message(f"The model does not know the character {char!r}: it cannot write it.")
            return
        req = GenerationRequest("", max_new, temperature, top_k, top_p, seed)
        yield from stream_run(lm, req, branch=(text, char), keep=keep, roles=badges(registry, lm.name))

    @fair((error_message(BUSY), error_message(BUSY)))
    @on_gpu(3)
    def compare(name_a, name_b, prompt, max_new, temperature, seed, request: gr.Request = None):
        """Both models, the same prompt and seed, streamed side by side, each into its own view with
        its attention and how well it reads back its own text."""
        try:
            models = [registry.get(name) for name in (name_a, name_b)]
        except Exception as e:
            failed = error_message(f"The model could not be loaded: {e}")
            yield failed, failed
            return
        req = GenerationRequest(prompt, max_new, temperature, 0, 1.0, seed)
        for a, b in _zip_longest(*(stream_run(lm, req, own=True) for lm in models)):
            yield (gr.skip() if a is None else a), (gr.skip() if b is None else b)

    @fair(error_message(BUSY))
    @on_gpu(3)
    def timeline(model_name, label, prompt, max_new, temperature, seed, request: gr.Request = None):
        entries = dict(registry.timeline(model_name))
        yield from write_with(entries.get(label, model_name), prompt, max_new, temperature, 0, 1.0, seed)

    def switch_model(model_name):
        try:
            lm = registry.get(model_name)
        except Exception as e:
            return f"⚠️ The model could not be loaded: {e}", gr.update(), gr.update()
        labels = [label for label, _ in registry.timeline(model_name)]
        return lm.card, gr.update(choices=labels, value=labels[0]), model_line(lm)

    def show_roles(model_name, label):
        """The role table of the snapshot the timeline shows (or of the model)."""
        return roles_table(registry, dict(registry.timeline(model_name)).get(label, model_name))

    return Handlers(write, branch, compare, timeline, switch_model, knockout, show_roles, from_link, write_link,
                    example)


def wire_write_tab(demo: gr.Blocks, handlers: Handlers, live: gr.HTML, generate_btn: gr.Button,
                   stop_btn: gr.Button, inputs: list) -> None:
    """Generate, Enter, Stop, the view's own requests (force, knock out) and a shared link, on the Write
    tab. While a run is written the controls are locked and Generate says so; no spinner covers them."""
    model, prompt, max_new, temperature, top_k, top_p, seed = inputs
    controls = [prompt, generate_btn, model, max_new, temperature, top_k, top_p, seed]
    quick = {"queue": False, "api_visibility": "private", "show_progress": "hidden"}

    def controls_on(on: bool):  # the controls' update: usable or locked, Generate saying which
        def updates():  # new dicts at each call: Gradio consumes the ones it is given
            return [gr.update(interactive=on, value="Generate" if on else "Writing…") if c is generate_btn
                    else gr.update(interactive=on) for c in controls]
        return updates

    lock, unlock = controls_on(False), controls_on(True)
    streaming = {"concurrency_id": "page", "api_visibility": "private", "show_progress": "hidden"}
    runs = []
    for trigger in (generate_btn.click, prompt.submit):
        locked = trigger(lock, None, controls, **quick)
        runs.append(locked.then(handlers.write, inputs, live, concurrency_limit=4, **streaming))
        runs[-1].then(unlock, None, controls, **quick)
    live.knockout(lock, None, controls, **quick)
    runs.append(live.knockout(handlers.knockout, inputs, live, **streaming))
    runs[-1].then(unlock, None, controls, **quick)
    live.branch(lock, None, controls, **quick)
    runs.append(live.branch(handlers.branch, inputs[:1] + inputs[2:], live, **streaming))
    runs[-1].then(unlock, None, controls, **quick)
    link = gr.State(None)  # a shared run's notes, from the page's address (read_link)
    opened = demo.load(handlers.from_link, None, [*inputs, link], **quick)
    runs.append(opened.then(handlers.write_link, [link, *inputs], live, **streaming))
    stop_btn.click(unlock, None, controls, cancels=runs, queue=False, api_visibility="private")


def _zip_longest(*iterators):
    iterators = [iter(i) for i in iterators]
    while True:
        items = [next(i, None) for i in iterators]
        if all(item is None for item in items):
            return
        yield items


def api_generate(registry: ModelRegistry, limits: ClientLimits | None = None):
    @(limits or ClientLimits()).fair({"text": "", "notes": [BUSY]})
    @gpu_decorator(registry)(1)
    def generate(prompt: str, max_new_chars: int = 300, temperature: float = 0.8, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 0, knock_out: str = "", request: gr.Request = None) -> Iterator[dict]:
        """Continue a prompt with GPT-40k's character-level model, one character at a time. Streams
        {"text": ..., "notes": [...]}: the text so far (prompt included, as cleaned) and what was
        changed in the request and why.

        Args:
            prompt: the text to continue, in the voice of the model's books
            max_new_chars: how many characters to write (1-2000)
            temperature: 0 is greedy; higher is more random (0-2)
            top_k: sample from the k likeliest characters only (0: all)
            top_p: sample from the likeliest characters that make up this much probability (1: all)
            seed: the same seed and settings write the same text
            knock_out: heads that write nothing, e.g. "L2H3,L1H1" (1-based layer and head; empty: none)
        """
        lm = registry.get(registry.default)
        try:
            model, _, notes = knocked_out_model(lm, knock_out)
        except GPT40kError as e:
            yield {"text": "", "notes": [f"Nothing was written: {e}."]}
            return
        req = GenerationRequest(prompt, max_new_chars, temperature, top_k, top_p, seed)
        last, transcript = 0.0, None
        for transcript, _ in write_steps(model, lm.tokenizer, req, notes=notes):
            if time.monotonic() - last >= YIELD_EVERY_S:
                last = time.monotonic()
                yield {"text": transcript.text, "notes": list(transcript.notes)}
        if transcript is not None:
            yield {"text": transcript.text, "notes": list(transcript.notes)}

    return generate


def build_ui(registry: ModelRegistry, limits: ClientLimits | None = None) -> gr.Blocks:
    limits = limits or ClientLimits()
    handlers = make_handlers(registry, limits)
    default = registry.get(registry.default)
    labels = [label for label, _ in registry.timeline(registry.default)]
    with gr.Blocks(title="GPT-40k: watch a tiny GPT think") as demo:
        gr.Markdown("# GPT-40k\nA character-level GPT writes one character at a time: watch each choice, and "
                    "what every attention head looks at.", elem_id="gpt40k-title")
        gr.Markdown(f"<div class='gpt40k-warning'>{registry.warning}</div>" if registry.warning else "",
                    elem_id="gpt40k-warning", visible=bool(registry.warning))
        with gr.Tab("Write"):
            about = gr.Markdown(model_line(default), elem_id="gpt40k-about")
            with gr.Row(equal_height=True):
                prompt = gr.Textbox(value=EXAMPLES[0], show_label=False, lines=1, max_lines=4, scale=6,
                                    placeholder="A prompt in the voice of the books", elem_id="gpt40k-prompt")
                generate_btn = gr.Button("Generate", variant="primary", scale=1, min_width=110,
                                         elem_id="gpt40k-generate")
                stop_btn = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="gpt40k-stop")
            with gr.Accordion("Settings: model, length, temperature, top-k, top-p, seed", open=False):
                with gr.Row(elem_id="gpt40k-settings"):
                    model = gr.Dropdown(registry.choices, value=registry.default, label="Model",
                                        elem_id="gpt40k-model", scale=2)
                    max_new = gr.Number(300, label="New characters (1-2000)", precision=0,
                                        elem_id="gpt40k-max-new")
                    temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = greedy)")
                    top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p (1 = off)")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="gpt40k-seed")
            live = live_view("gpt40k-stop", elem_id="gpt40k-live", prompt_id="gpt40k-prompt", link=True)
            handlers.example()  # now, so the first visitor waits for nothing
            gr.Examples([[e] for e in EXAMPLES], inputs=[prompt], label="Prompts to try", elem_id="gpt40k-examples")
        with gr.Tab("Model"):
            gr.Markdown("## How it learned: the training timeline\nThe same prompt and seed, written by snapshots "
                        "of the run at different steps, and by the trained model.")
            with gr.Row(equal_height=True):
                snapshot = gr.Radio(labels, value=labels[0], label="Snapshot", scale=4, elem_id="gpt40k-snapshot")
                tl_prompt = gr.Textbox(EXAMPLES[1], label="Prompt", scale=2)
                tl_btn = gr.Button("Write", scale=1)
                tl_stop = gr.Button("Stop", variant="stop", scale=1, elem_id="gpt40k-timeline-stop")
            tl_live = live_view("gpt40k-timeline-stop", pace=120, elem_id="gpt40k-timeline")
            gr.Markdown("## What each head does\nEvery head scored for the patterns people find in trained "
                        "transformers: 1 means all of its attention goes where the pattern says. The table follows "
                        "the snapshot chosen above: watch the roles appear as the model learns.")
            # the snapshot the radio shows, scored now, at start-up (as the trained model is, for the grid's
            # badges): the table matches the radio before anyone touches it
            roles_md = gr.Markdown(handlers.show_roles(registry.default, labels[0]), elem_id="gpt40k-roles")
            gr.Markdown("## Compare two checkpoints\nThe same prompt and seed through both, side by side: each "
                        "text with the attention of the head chosen under it, and how well the model that wrote "
                        "it reads it back (nats a character: lower is surer).")
            early, late = registry.early_and_late()
            with gr.Row():
                model_a = gr.Dropdown(registry.choices, value=early, label="Model A", elem_id="gpt40k-model-a")
                model_b = gr.Dropdown(registry.choices, value=late, label="Model B", elem_id="gpt40k-model-b")
            with gr.Row(equal_height=True):
                cmp_prompt = gr.Textbox(EXAMPLES[1], label="Prompt", scale=3)
                cmp_chars = gr.Number(300, label="New characters", precision=0)
                cmp_temp = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature")
                cmp_seed = gr.Number(0, precision=0, label="Seed")
                cmp_btn = gr.Button("Compare", elem_id="gpt40k-compare")
                cmp_stop = gr.Button("Stop", variant="stop", elem_id="gpt40k-compare-stop")
            with gr.Row(equal_height=False):
                out_a = live_view("gpt40k-compare-stop", pace=120, elem_id="gpt40k-out-a", compare=True)
                out_b = live_view("gpt40k-compare-stop", pace=120, elem_id="gpt40k-out-b", compare=True)
            gr.Markdown("## The model card")
            card = gr.Markdown(default.card, elem_id="gpt40k-card")

        wire_write_tab(demo, handlers, live, generate_btn, stop_btn,
                       [model, prompt, max_new, temperature, top_k, top_p, seed])
        model.change(handlers.switch_model, [model], [card, snapshot, about], api_visibility="private").then(
            handlers.show_roles, [model, snapshot], roles_md, api_visibility="private")
        snapshot.change(handlers.show_roles, [model, snapshot], roles_md, api_visibility="private")

        tl_inputs = [model, snapshot, tl_prompt, max_new, temperature, seed]
        quiet = {"concurrency_id": "page", "api_visibility": "private", "show_progress": "hidden"}
        tl_run = tl_btn.click(handlers.timeline, tl_inputs, tl_live, **quiet)
        tl_change = snapshot.change(handlers.timeline, tl_inputs, tl_live, **quiet)
        tl_stop.click(None, cancels=[tl_run, tl_change], queue=False, api_visibility="private")
        cmp_run = cmp_btn.click(handlers.compare, [model_a, model_b, cmp_prompt, cmp_chars, cmp_temp, cmp_seed],
                                [out_a, out_b], **quiet)
        cmp_stop.click(None, cancels=[cmp_run], queue=False, api_visibility="private")
        # concurrency_limit > MAX_RUNNING: one client never holds every slot
        gr.api(api_generate(registry, limits), api_name="generate", concurrency_id="api", concurrency_limit=4)
    return demo
