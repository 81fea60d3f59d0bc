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


class StartCheckpointError(Exception):
    """A trial's start checkpoint file is unreadable or not the one the study named (its
    hash differs): the trial does not train and writes no record, and the launch stops
    (every other trial would meet the same file); the next launch checks the file again."""


# --------------------------------------------------------------------------- how a trial ended

class TrialError(RuntimeError):
    """A trial that did not finish. ``record`` is the record it wrote (the same data as the
    file, which stays the source of truth for resume), or None if it wrote none."""

    def __init__(self, message: str = "", record: dict | None = None) -> None:
        super().__init__(message)
        self.record = record


class TrialFailed(TrialError):
    """The trial raised; its record (status ``failed``) is already written. Ray retries it."""


class TrialDiverged(TrialError):
    """The loss (or gradient) became NaN/inf: recorded as diverged, never retried (the
    trial is deterministic given its seed, a retry would diverge again)."""


def trial_error(exc: BaseException | None) -> TrialError | None:
    """The :class:`TrialError` in ``exc``'s chain (causes and contexts), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TrialError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
