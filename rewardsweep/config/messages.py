"""One-line spec errors: ``file:line: key: message``, from a check or from pydantic.

Every error a spec can get goes through :class:`SpecFile`, which knows the file's name,
folder and the line of every dotted path, so a message names where the problem is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from rewardsweep.checks import Invalid, first_error
from rewardsweep.config.yaml import where
from rewardsweep.errors import SpecError

__all__ = ["SpecFile"]


class SpecFile:
    """The spec being read: says where a key is when something is wrong, resolves paths."""

    def __init__(self, source: str, folder: Path, lines: dict[str, int]) -> None:
        self.source, self.folder, self.lines = source, folder, lines

    def where(self, key: str) -> str:
        """``file:line`` for a dotted path of the YAML (``file`` if unknown)."""
        return where(self.source, self.lines, key)

    def fail(self, key: str, message: str) -> SpecError:
        """``file:line: key: message`` (one line)."""
        return SpecError(f"{self.where(key)}: {key}: {' '.join(str(message).split())}")

    def checked(self, key: str, check: Callable[[Any], Any], value: Any, note: str = "") -> Any:
        """``check(value)``, or the error naming ``key`` (with ``note`` after what was expected)."""
        try:
            return check(value)
        except Invalid as exc:
            raise self.fail(key, f"{exc}{note}") from None

    def from_validation(self, exc: ValidationError, model: type[BaseModel], prefix: str = "",
                        hint: Callable[[str, str], str] | None = None) -> SpecError:
        """pydantic's first error as ``file:line: key: message`` (``prefix``: where the model's
        data sits in the YAML; ``hint(key, message)`` may add to the message)."""
        key, message = first_error(exc, model)
        key = f"{prefix}{key}" if key else prefix.rstrip(".")
        if hint is not None:
            message += hint(key, message)
        if not key:
            return SpecError(f"{self.source}: {message}")
        return self.fail(key, message)   # a missing key is shown at the mapping that lacks it

    def resolve(self, ref: str) -> Path:
        """A path as written in the spec: relative ones are read from the spec's folder."""
        path = Path(os.path.expanduser(ref))
        return path if path.is_absolute() else (self.folder / path)
