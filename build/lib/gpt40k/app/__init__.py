"""The demo page, `python app.py`: the model writes, the browser draws what it attends to.

request.py     what a visitor asks for, clamped and cleaned, with notes
transcript.py  a generation step by step: choices and attention rows
stepstream.py  the messages the server streams to the page
registry.py    the models on offer: shipped, requested, their training snapshots
page.py        the Gradio page and the `generate` API
static/        the live view drawn in the browser: live.html, live.css, live.js
"""

from .main import main

__all__ = ["main"]
