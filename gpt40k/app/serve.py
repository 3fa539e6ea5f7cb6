"""``python app.py``: load the models, build the page, serve it (locally and on Spaces)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket

try:  # on a ZeroGPU Space, `spaces` must come before anything touches CUDA
    import spaces  # noqa: F401
except ImportError:
    pass
import gradio as gr  # noqa: E402
import torch  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from ..errors import GPT40kError
from .limits import BodyLimit, ClientLimits
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


def mcp_available() -> bool:
    """Gradio serves MCP when its [mcp] extra (the ``mcp`` package) is installed, as requirements.txt does."""
    return importlib.util.find_spec("mcp") is not None


def check_address(host: str, port: int) -> str | None:
    """Why ``host``:``port`` cannot be served on, in a user's words; None when it can."""
    if not 0 <= port <= 65535:
        return f"--port {port} is not a port number: give one from 1 to 65535 (the default is 7860)"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        return (f"--host {host!r} is not an address of this machine: give 127.0.0.1 (this machine only) "
                "or 0.0.0.0 (every network it is on)")
    return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    problem = check_address(args.host, args.port)
    if problem:
        print(f"error: {problem}")
        return 2
    if "OMP_NUM_THREADS" not in os.environ:
        # Decoding steps run on one thread anyway (gpt40k.generate.decoder); here the prompt's and the window
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
    registry.choose_device()
    log.info("serving %s on the %s", registry.default, registry.device.upper())
    limits = ClientLimits()
    demo = build_ui(registry, limits)
    demo.queue(max_size=64, default_concurrency_limit=4)
    # System fonts: the page loads nothing from outside the server (Spaces, offline machines).
    theme = gr.themes.Soft(primary_hue="red", neutral_hue="stone", font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"]).set(
        # the theme's own pairs fall short of 4.5:1 (red 500 on red 100 is 3.1:1): darker shades
        block_label_text_color="*primary_800", block_title_text_color="*primary_800",
        checkbox_label_background_fill_selected="*primary_700", body_text_color_subdued="*neutral_600")
    try:  # mcp_server: the `generate` API is also a tool for agents (gradio[mcp]), at /gradio_api/mcp/
        demo.launch(server_name=args.host, server_port=args.port, share=False, show_error=False, theme=theme,
                    css=page_css(), mcp_server=mcp_available(),
                    app_kwargs={"middleware": [Middleware(BodyLimit, limits=limits)]})
    except OSError as e:  # the port is taken, or the address is not this machine's
        print(f"error: cannot serve on {args.host}:{args.port}: {e}. Give another --port, or stop what uses it")
        return 1
    return 0
