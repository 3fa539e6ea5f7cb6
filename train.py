"""Train a character-level GPT on your own books. `python train.py --help` lists every flag."""

from gpt40k.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main())
