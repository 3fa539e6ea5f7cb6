"""Every error a user can fix, in one place. Command lines and the app show their message alone,
never a traceback. Those that replaced a ``ValueError`` or ``RuntimeError`` still are one, so
older ``except ValueError`` code keeps working."""


class GPT40kError(Exception):
    """Base of every error whose message tells the user what was wrong and what to do."""


class ConfigError(GPT40kError, ValueError):
    """A flag, a setting or an argument has a value that cannot work."""


class DeviceError(GPT40kError, RuntimeError):
    """The requested device or precision is not available here."""


class CorpusError(GPT40kError, ValueError):
    """The training text cannot be used as it is; the message says why and what to do."""


class TokenizerError(GPT40kError, ValueError):
    """A vocabulary or tokenizer file that cannot work."""


class UnknownCharactersError(TokenizerError):
    """The text holds characters the vocabulary does not have."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        super().__init__(f"{len(self.chars)} character(s) are not in the vocabulary: {list_chars(self.chars)}. "
                         "Pass unknown='drop' or unknown='replace' to handle them instead.")


def list_chars(chars: list[str], limit: int = 20) -> str:
    """Characters for a message: quoted, invisible ones as U+XXXX, the first ``limit`` and a count."""
    shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


class CheckpointError(GPT40kError, ValueError):
    """A checkpoint is missing, incomplete or corrupt, or cannot be written; the message names the problem."""


class HubError(GPT40kError, RuntimeError):
    """Talking to the Hub failed; the message says what failed and how to fix it."""


class GenerationError(GPT40kError, ValueError):
    """Sampling cannot start or go on; the message says why."""


class TrainingError(GPT40kError, RuntimeError):
    """Training cannot go on; the message says why and what to do."""


class ConvertError(GPT40kError, ValueError):
    """A checkpoint from another project cannot be converted; the message says why."""
