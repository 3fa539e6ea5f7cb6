"""The model's sizes, as one dataclass: what config.json holds beside the weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError

MODEL_TYPE = "gpt40k"
LIMITS = {"vocab_size": 2**16, "block_size": 8192, "n_layer": 128, "n_head": 256, "n_embd": 8192}
MAX_PARAMS = 2**30  # ~1.07 billion: the sizes together decide memory too (4 GB of fp32 weights)


@dataclass
class GPTConfig:
    vocab_size: int = 97
    block_size: int = 256  # the longest context, in characters (learned positions go no further)
    n_layer: int = 4
    n_head: int = 6
    n_embd: int = 192
    dropout: float = 0.2
    bias: bool = True  # biases in Linear and LayerNorm layers
    activation: str = "gelu"  # "gelu" (GPT-2, nanoGPT) or "relu" (the lecture's seed model)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ConfigError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        for name, limit in LIMITS.items():  # a config decides memory: refuse sizes no character model needs
            if getattr(self, name) > limit:
                raise ConfigError(f"{name} = {getattr(self, name)} is over this project's limit of {limit}")
        if self.num_parameters() > MAX_PARAMS:
            raise ConfigError(f"{self.n_layer} layers of {self.n_embd} channels make {self.num_parameters():,} "
                              f"parameters, over this project's limit of {MAX_PARAMS:,}: a smaller model")

    def num_parameters(self) -> int:
        """The model's parameter count, from the sizes alone (what GPT(config).num_parameters() gives)."""
        C, V, bias = self.n_embd, self.vocab_size, int(self.bias)
        block = 2 * C * (1 + bias) + (3 * C * C + 3 * C * bias) + (C * C + C * bias) + (8 * C * C + 5 * C * bias)
        return (V + self.block_size) * C + self.n_layer * block + C * (1 + bias) + V * C + V * bias

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return {"model_type": MODEL_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GPTConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a config is a JSON object, not {type(data).__name__}")
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ConfigError(f"model_type is {data.get('model_type')!r}, not {MODEL_TYPE!r}: not a GPT-40k model")
        known = {f.name for f in fields(cls)}
        missing = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd"} - data.keys()
        if missing:
            raise ConfigError(f"config is missing {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})
