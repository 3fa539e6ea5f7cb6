"""The model: its sizes (config), the lecture's transformer (model), the characters (tokenizer),
and saving/loading Hugging Face style (pretrained)."""

from .config import GPTConfig
from .model import GPT, GPTOutput, KVCache, causal_attention
from .tokenizer import CharTokenizer

__all__ = ["GPT", "GPTConfig", "GPTOutput", "KVCache", "CharTokenizer", "causal_attention"]
