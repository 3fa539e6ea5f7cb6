"""The Gradio page: write with the model, watch every head's attention, compare checkpoints.

``python app.py`` runs ``main()``; Hugging Face Spaces runs the same file unchanged.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .checkpoint import find_checkpoint, load_model
from .demo import WINDOW, GenerationRequest, Transcript, generate
from .errors import GPT40kError
from .model import GPT
from .tokenizer import CharTokenizer
from .viz import attention_over_text, empty_heatmap, heatmap_image, highlighted_text, probabilities

log = logging.getLogger("gpt40k.app")
ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIR = ROOT / "checkpoints"
EXAMPLES = ["In the grim darkness of the far future", "The Emperor protects", "Brother-Captain, the walls",
            "And the daemon spoke:", "Sing, O Muse, of the wrath", "It was on the dark night"]
TEXT_EVERY_S = 1 / 25  # how often streaming text reaches the page
HEATMAP_EVERY_S = 0.8  # heatmaps cost 0.2 s or more to draw: redraw at most this often while writing
CSS = """
.gpt40k-head {display: flex; gap: .6em; align-items: baseline; font-family: ui-monospace, monospace;
              font-size: 13px; margin: 2px 0; white-space: pre-wrap;}
.gpt40k-head-label {color: #888; min-width: 4.5em;}
.gpt40k-warning {border-left: 4px solid #b91c1c; padding: .4em .8em; background: #fff1f1; color: #5f1111;}
/* one token per character (so a click finds its character): draw them as running text */
#gpt40k-output .textfield {font-size: 0; line-height: 1.7;}
#gpt40k-output .token-container, #gpt40k-output .token {display: inline; padding: 0; margin: 0; border-radius: 0;}
#gpt40k-output .text {font-family: ui-serif, Georgia, serif; font-size: 17px; white-space: pre-wrap; padding: 0;}
#gpt40k-output .token.highlighted .text {color: #8b1111; background: #fde4e4;}  /* what the model wrote */
"""


@dataclass
class LoadedModel:
    name: str
    model: GPT
    tokenizer: CharTokenizer
    folder: Path

    @property
    def card(self) -> str:
        readme = self.folder / "README.md"
        if not readme.exists():
            return f"## {self.name}\n\nThis checkpoint has no model card."
        text = readme.read_text(encoding="utf-8")
        return re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # drop the YAML front matter

    @property
    def loss_curve(self) -> str | None:
        path = self.folder / "loss_curve.png"
        return str(path) if path.exists() else None


class ModelRegistry:
    """The models the page offers: the shipped checkpoints, the requested one, its Hub branches."""

    def __init__(self):
        self.sources: dict[str, str] = {}  # display name -> folder or Hub id
        self.loaded: dict[str, LoadedModel] = {}
        self.warning: str | None = None
        self.default: str | None = None

    def add_shipped(self, folder: Path = SHIPPED_DIR) -> None:
        for candidate in sorted(folder.iterdir()) if folder.is_dir() else []:
            try:
                find_checkpoint(candidate)
            except GPT40kError:
                continue
            self.sources[f"shipped: {candidate.name}"] = str(candidate)

    def request(self, ref: str | None) -> None:
        """Make ``ref`` (a folder or user/name[@rev]) the default; on failure keep a shipped one and say why."""
        if ref:
            try:
                self.load(ref, ref)
                self.sources[ref] = ref
                self.default = ref
                self._add_hub_branches(ref)
                return
            except Exception as e:  # offline, missing, private, corrupt: the app still starts
                self.warning = (f"Could not load the model {ref!r}: {e} "
                                "The page uses the shipped checkpoint instead.")
                log.warning(self.warning)
        if not self.sources:
            raise GPT40kError(f"no model to show: {SHIPPED_DIR} holds no checkpoint and none was given with "
                              "--model or GPT40K_MODEL")
        self.default = next(iter(self.sources))
        self.get(self.default)

    def _add_hub_branches(self, ref: str) -> None:
        """Offer the step-N branches that --push-every made, to compare early and late models."""
        if Path(ref).exists() or "@" in ref:
            return
        try:
            from huggingface_hub import HfApi

            refs = HfApi().list_repo_refs(ref)
            for branch in sorted((b.name for b in refs.branches if b.name.startswith("step-")),
                                 key=lambda n: int(n.split("-")[1]) if n.split("-")[1].isdigit() else 0):
                self.sources[f"{ref}@{branch}"] = f"{ref}@{branch}"
        except Exception as e:
            log.info("no Hub branches listed for %s: %s", ref, e)

    def load(self, name: str, source: str) -> LoadedModel:
        model, tok, folder = load_model(source)
        self.loaded[name] = LoadedModel(name, model, tok, folder)
        return self.loaded[name]

    def get(self, name: str | None) -> LoadedModel:
        name = name if name in self.sources else self.default
        return self.loaded.get(name) or self.load(name, self.sources[name])

    @property
    def choices(self) -> list[str]:
        return list(self.sources)


# ---- event handlers ---------------------------------------------------------------------
def _notes_markdown(notes: list[str], error: str | None = None) -> str:
    lines = [f"⚠️ {error}"] if error else []
    lines += [f"ℹ️ {n}" for n in notes]
    return "\n\n".join(lines)


def _step_view(transcript: Transcript | None, step: int, layer: int):
    """(text, heatmap, probabilities) as they were after ``step`` generated characters."""
    if transcript is None:
        return [], empty_heatmap(), {}
    step = max(0, min(int(step or 0), len(transcript.steps)))
    upto = len(transcript.prompt) + step
    weights, chars = transcript.heatmap(int(layer or 1) - 1, upto)
    probs = probabilities(transcript.steps[step - 1]) if step else {}
    return highlighted_text(transcript, step), heatmap_image(weights, chars, int(layer or 1) - 1), probs


def make_handlers(registry: ModelRegistry):
    def run(model_name, prompt, max_new, temperature, top_k, top_p, seed, speed, layer):
        """Stream (text, heatmap, probabilities, notes, step slider, transcript) while writing."""
        try:
            lm = registry.get(model_name)
        except Exception as e:
            yield [], empty_heatmap(), {}, _notes_markdown([], f"The model could not be loaded: {e}"), \
                gr.update(), None
            return
        req = GenerationRequest(prompt, max_new, temperature, top_k, top_p, seed, speed)
        transcript, started, last_text, last_map, map_cost = None, time.time(), 0.0, 0.0, 0.0
        heat = empty_heatmap()
        try:
            for i, (transcript, clean) in enumerate(generate(lm.model, lm.tokenizer, req)):
                if clean.chars_per_second > 0:  # let people watch: wait until this character is due
                    time.sleep(max(0.0, started + (i + 1) / clean.chars_per_second - time.time()))
                now = time.time()
                if now - last_map >= max(HEATMAP_EVERY_S, 3 * map_cost):  # drawing never takes over
                    heat = _step_view(transcript, i + 1, layer)[1]
                    last_map = time.time()
                    map_cost = last_map - now
                if clean.chars_per_second > 0 or now - last_text >= TEXT_EVERY_S:
                    last_text = now
                    yield (highlighted_text(transcript, i + 1), heat, probabilities(transcript.steps[-1]),
                           _notes_markdown(transcript.notes), gr.update(), transcript)
        except Exception as e:  # never a traceback on the page
            log.exception("generation failed")
            yield [], empty_heatmap(), {}, _notes_markdown([], f"Generation failed: {e}"), gr.update(), transcript
            return
        if transcript is None:
            return
        n = len(transcript.steps)
        text, heat, probs = _step_view(transcript, n, layer)
        yield (text, heat, probs, _notes_markdown(transcript.notes),
               gr.update(maximum=max(n, 1), value=n, interactive=True), transcript)

    def stopped(transcript):
        """After Stop: what was written stays, and the slider replays it."""
        n = len(transcript.steps) if transcript else 0
        return gr.update(maximum=max(n, 1), value=n, interactive=n > 0)

    def scrub(transcript, step, layer):
        return _step_view(transcript, step, layer)

    def redraw(transcript, step, layer):
        return _step_view(transcript, step if transcript else 0, layer)[1]

    def inspect(transcript, evt: gr.SelectData):
        if transcript is None or evt.index is None:
            return ""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return attention_over_text(transcript, int(index))

    def switch_model(model_name):
        lm = registry.get(model_name)
        layers = [str(i + 1) for i in range(lm.model.config.n_layer)]
        return lm.card, lm.loss_curve, gr.update(choices=layers, value="1")

    def compare(name_a, name_b, prompt, max_new, temperature, seed):
        outputs = []
        for name in (name_a, name_b):
            try:
                lm = registry.get(name)
                req = GenerationRequest(prompt, max_new, temperature, 0, 1.0, seed)
                transcript = None
                for transcript, _ in generate(lm.model, lm.tokenizer, req):
                    pass
                outputs.append(transcript.text if transcript else "")
            except Exception as e:
                outputs.append(f"(failed: {e})")
        return tuple(outputs)

    return run, stopped, scrub, redraw, inspect, switch_model, compare


def api_generate(registry: ModelRegistry):
    def generate_text(prompt: str, max_new_chars: int = 300, temperature: float = 0.8, top_k: int = 0,
                      top_p: float = 1.0, seed: int = 0) -> Iterator[str]:
        """Continue ``prompt`` with the page's current default model; streams the text as it grows."""
        lm = registry.get(registry.default)
        req = GenerationRequest(prompt, max_new_chars, temperature, top_k, top_p, seed)
        last = 0.0
        transcript = None
        for transcript, _ in generate(lm.model, lm.tokenizer, req):
            if time.time() - last >= TEXT_EVERY_S:
                last = time.time()
                yield transcript.text
        if transcript is not None:
            yield transcript.text

    return generate_text


# ---- the page ---------------------------------------------------------------------------
def build_ui(registry: ModelRegistry):
    run, stopped, scrub, redraw, inspect, switch_model, compare = make_handlers(registry)
    default = registry.get(registry.default)
    layers = [str(i + 1) for i in range(default.model.config.n_layer)]
    with gr.Blocks(title="GPT-40k: watch a tiny GPT think") as demo:
        gr.Markdown("# GPT-40k\nA character-level GPT writes one character at a time. Watch it choose each "
                    "one, and see what every attention head looks at.")
        gr.Markdown(f"<div class='gpt40k-warning'>{registry.warning}</div>" if registry.warning else "",
                    elem_id="gpt40k-warning", visible=bool(registry.warning))
        transcript = gr.State(None)
        with gr.Tab("Write"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", value=EXAMPLES[0], lines=3, elem_id="gpt40k-prompt")
                    gr.Examples([[e] for e in EXAMPLES], inputs=[prompt], label="Try")
                    with gr.Row():
                        max_new = gr.Slider(1, 2000, value=300, step=1, label="New characters")
                        speed = gr.Slider(0, 100, value=0, step=1, label="Speed (characters/s, 0 = fastest)")
                    with gr.Row():
                        temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = greedy)")
                        top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k (0 = off)")
                        top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p (1 = off)")
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="Seed")
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="gpt40k-generate")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="gpt40k-stop")
                    notes = gr.Markdown(elem_id="gpt40k-notes")
                    output = gr.HighlightedText(label="Text (prompt, then what the model wrote)",
                                                color_map={"generated": "#b91c1c"}, show_legend=False,
                                                show_inline_category=False,
                                                combine_adjacent=False, elem_id="gpt40k-output")
                    step = gr.Slider(0, 1, value=0, step=1, label="Step (scrub back through the generation)",
                                     interactive=False, elem_id="gpt40k-step")
                    attention_text = gr.HTML(elem_id="gpt40k-attention-text",
                                             value="<p>Click a character above to see what each head "
                                                   "looked at while reading it.</p>")
                with gr.Column(scale=3):
                    layer = gr.Radio(layers, value="1", label="Layer", elem_id="gpt40k-layer")
                    heatmap = gr.Image(value=empty_heatmap(), label=f"Attention per head (last {WINDOW} characters)",
                                       type="numpy", elem_id="gpt40k-heatmap", buttons=["download"])
                    probs = gr.Label(label="Next-character probabilities (after temperature, top-k, top-p)",
                                     num_top_classes=10, elem_id="gpt40k-probs")
        with gr.Tab("Model"):
            model_choice = gr.Dropdown(registry.choices, value=registry.default, label="Model",
                                       elem_id="gpt40k-model")
            with gr.Row():
                card = gr.Markdown(default.card)
                curve = gr.Image(default.loss_curve, label="Training curve", type="filepath")
            gr.Markdown("## Compare two checkpoints\nThe same prompt and seed through both.")
            with gr.Row():
                model_a = gr.Dropdown(registry.choices, value=registry.choices[0], label="Model A")
                model_b = gr.Dropdown(registry.choices, value=registry.choices[-1], label="Model B")
            with gr.Row():
                cmp_prompt = gr.Textbox(value=EXAMPLES[1], label="Prompt")
                cmp_chars = gr.Slider(1, 1000, value=300, step=1, label="New characters")
                cmp_temp = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature")
                cmp_seed = gr.Number(value=0, precision=0, label="Seed")
            cmp_btn = gr.Button("Compare")
            with gr.Row():
                out_a = gr.Textbox(label="Model A", lines=10)
                out_b = gr.Textbox(label="Model B", lines=10)

        inputs = [model_choice, prompt, max_new, temperature, top_k, top_p, seed, speed, layer]
        outputs = [output, heatmap, probs, notes, step, transcript]
        started = generate_btn.click(run, inputs, outputs, concurrency_limit=4, concurrency_id="generate",
                                     api_visibility="private")
        submitted = prompt.submit(run, inputs, outputs, concurrency_limit=4, concurrency_id="generate",
                                  api_visibility="private")
        stop_btn.click(stopped, [transcript], [step], cancels=[started, submitted], api_visibility="private")
        step.change(scrub, [transcript, step, layer], [output, heatmap, probs], api_visibility="private")
        layer.change(redraw, [transcript, step, layer], [heatmap], api_visibility="private")
        output.select(inspect, [transcript], [attention_text], api_visibility="private")
        model_choice.change(switch_model, [model_choice], [card, curve, layer], api_visibility="private")
        cmp_btn.click(compare, [model_a, model_b, cmp_prompt, cmp_chars, cmp_temp, cmp_seed], [out_a, out_b],
                      concurrency_limit=2, api_visibility="private")
        gr.api(api_generate(registry), api_name="generate", concurrency_limit=4, concurrency_id="generate")
    return demo


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="The GPT-40k demo page.")
    p.add_argument("--model", default=os.environ.get("GPT40K_MODEL"),
                   help="a checkpoint folder or Hub id user/name[@revision] (default: $GPT40K_MODEL, "
                        "else the shipped checkpoint)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    registry = ModelRegistry()
    registry.add_shipped()
    try:
        registry.request(args.model)
    except GPT40kError as e:
        print(f"error: {e}")
        return 1
    log.info("serving %s", registry.default)
    demo = build_ui(registry)
    demo.queue(max_size=64, default_concurrency_limit=4)
    # System fonts: the page loads nothing from outside the server (Spaces, offline machines).
    theme = gr.themes.Soft(primary_hue="red", neutral_hue="stone", font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])
    demo.launch(server_name=args.host, server_port=args.port, share=False, show_error=False, theme=theme, css=CSS)
    return 0
