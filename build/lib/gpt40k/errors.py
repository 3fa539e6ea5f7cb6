"""Errors a user can fix. Command lines and the app show their message alone, never a traceback."""


class GPT40kError(Exception):
    """Base of every error whose message tells the user what was wrong and what to do."""


class ConfigError(GPT40kError, ValueError):
    """A flag or setting has a value that cannot work."""


class DeviceError(GPT40kError, RuntimeError):
    """The requested device or precision is not available here."""
