"""The demo page, `python app.py`: the model writes, the browser draws what it attends to.

request.py     what a visitor asks for, clamped and cleaned, with notes
transcript.py  a generation step by step: choices and attention rows
stepstream.py  the messages the server streams to the page
registry.py    the models on offer: shipped, requested, their training snapshots
page.py        the Gradio page and the `generate` API
static/        the live view drawn in the browser: live.html, live.css, live/*.js (ES modules)
livejs.py      those modules bundled into the one script gr.HTML runs
serve.py       `python app.py`: load the models, build the page, serve it
"""


def main(argv: list[str] | None = None) -> int:
    """``python app.py``. Gradio is imported here rather than with the package, so the generation
    side (transcript.py, registry.py) also runs where only requirements-train.txt is installed."""
    from .serve import main as serve

    return serve(argv)


__all__ = ["main"]
