"""Train a character-level GPT on your own books. `python train.py --help` lists every flag."""

from gpt40k.train import main

if __name__ == "__main__":
    raise SystemExit(main())
