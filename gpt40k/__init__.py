"""GPT-40k: train a tiny character-level GPT on your own books, publish it, watch it think."""

from .checkpoint import Checkpoint, load
from .model import GPT, CharTokenizer, GPTConfig, GPTOutput, KVCache

__all__ = ["GPT", "GPTConfig", "GPTOutput", "KVCache", "CharTokenizer", "Checkpoint", "load"]
__version__ = "0.1.0"
