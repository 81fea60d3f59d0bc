"""User-facing errors: one line, no traceback, non-zero exit (see ``cli.main``)."""


class UserError(Exception):
    """A mistake in what the user gave us (a file, a key, a value).

    The message must name the file and key and say what was expected, in one line.
    """


class SpecError(UserError):
    """A search space that does not validate."""


class ConfigError(UserError):
    """A trial or reward configuration that cannot run; ``key`` is the dotted key it is about."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DataError(UserError):
    """A dataset folder that is missing, empty or inconsistent."""
