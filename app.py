"""The GPT-40k demo: `python app.py` (locally, and unchanged on Hugging Face Spaces).

    python app.py                              # the shipped checkpoint in checkpoints/
    python app.py --model user/name[@revision] # or a local checkpoint folder; or set GPT40K_MODEL
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage pings unless a user turns them on

from gpt40k.app import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
