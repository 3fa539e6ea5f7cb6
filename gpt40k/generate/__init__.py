"""Writing text with a model: sampling one character at a time through a KV cache (sampling), and
the lean one-position step that makes it fast (decoder)."""

from .sampling import Step, check_sampling, check_slide, draw, next_token_distribution, stream

__all__ = ["Step", "check_sampling", "check_slide", "draw", "next_token_distribution", "stream"]
