"""``python app.py``: load the models, build the page, serve it (locally and on Spaces)."""

from __future__ import annotations

import argparse
import logging
import os

import gradio as gr
import torch

from ..errors import GPT40kError
from .page import build_ui, page_css
from .registry import ModelRegistry

log = logging.getLogger("gpt40k.app")


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
    if "OMP_NUM_THREADS" not in os.environ:
        # Decoding steps run on one thread anyway (gpt40k.fast_decode); here the prompt's and the window
        # jumps' passes do too, because visitors' generations run side by side and share the cores
        # (with the browser, on a laptop). Before the lean steps this alone gave 650 characters/s shown
        # at the fastest setting instead of 500 (bench/page.py).
        torch.set_num_threads(1)
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
    demo.launch(server_name=args.host, server_port=args.port, share=False, show_error=False, theme=theme,
                css=page_css())
    return 0
