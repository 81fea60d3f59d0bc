"""Value checks shared by every schema (spec, trial config, reward settings).

Each check returns the value (normalised) or raises :class:`Invalid` saying what was
expected, in words a researcher reads in a one-line error. ``check.expected`` is that
phrase alone: the docs table and "did you mean" hints use it. :func:`checked` makes a
check a pydantic field type, so a schema declares a key, its default, its check and its
help in one line. Pure Python plus pydantic: importing this loads no torch.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from typing import Annotated, Any, Callable

from pydantic import BaseModel, PlainValidator, ValidationError

from rewardsweep.formatting import as_written

__all__ = ["Invalid", "one_of", "int_at_least", "number_between", "boolean", "text", "or_null",
           "checked", "did_you_mean", "first_error", "first_invalid", "model_at", "keys_of", "is_url"]

Check = Callable[[Any], Any]


def is_url(value: Any) -> bool:
    """An http(s) URL (a ``checkpoint:`` to download, :mod:`rewardsweep.download`), not a path."""
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


class Invalid(ValueError):
    """A value that does not fit. A cross-key rule names the ``key`` it is about and the
    keys it involves ``also`` (an error is shown at whichever of them the user set)."""

    def __init__(self, message: str, key: str | None = None, also: tuple[str, ...] = ()) -> None:
        super().__init__(" ".join(str(message).split()))
        self.key, self.also = key, also


def did_you_mean(word: Any, choices: Any, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else ""."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expects(phrase: str) -> Callable[[Check], Check]:
    def tag(check: Check) -> Check:
        check.expected = phrase  # type: ignore[attr-defined]
        return check

    return tag


def one_of(choices: tuple[str, ...]) -> Check:
    """One of ``choices``; a near miss gets a "did you mean" hint."""
    @_expects(f"one of {', '.join(choices)}")
    def check(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise Invalid(f"{as_written(value)} is not allowed; expected one of {', '.join(choices)}"
                      f"{did_you_mean(value, choices, cutoff=0.5)}")

    return check


def int_at_least(lo: int) -> Check:
    """An integer ``>= lo`` (a whole float such as ``2.0`` counts; a boolean does not)."""
    @_expects(f"an integer >= {lo}")
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and value >= lo:
                return int(value)
            raise Invalid(f"{as_written(value)} is not an integer; expected an integer >= {lo}")
        if value < lo:
            raise Invalid(f"{value} is too small; expected an integer >= {lo}")
        return int(value)

    return check


def number_between(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                   hi_open: bool = False) -> Check:
    """A finite number within the bounds given (open bounds exclude the bound itself)."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    expected = "a number" + (" " + " and ".join(parts) if parts else "")

    @_expects(expected)
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"{as_written(value)} is not a number; expected {expected}")
        value = float(value)
        if not math.isfinite(value):
            raise Invalid(f"{value} is not finite; expected {expected}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise Invalid(f"{value:g} is out of range; expected {expected}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise Invalid(f"{value:g} is out of range; expected {expected}")
        return value

    return check


@_expects("true or false")
def boolean(value: Any) -> bool:
    """``true`` or ``false`` only (YAML 1.2: ``on``/``off`` are strings)."""
    if isinstance(value, bool):
        return value
    raise Invalid(f"{as_written(value)} is not a boolean; expected true or false")


def text(what: str = "a string") -> Check:
    """A non-empty string."""
    @_expects(what)
    def check(value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        raise Invalid(f"{as_written(value)} is not allowed; expected {what}")

    return check


def or_null(check: Check, null_means: str = "null") -> Check:
    """``check``, or None for ``null``."""
    @_expects(f"{getattr(check, 'expected', 'a value')} or {null_means}")
    def wrapped(value: Any) -> Any:
        return None if value is None else check(value)

    return wrapped


def checked(check: Check) -> Any:
    """The type of a pydantic field validated by ``check``: ``key: checked(c) = Field(default)``.

    pydantic reports a failing check with its location (``loc``), and
    :mod:`rewardsweep.config.messages` turns that into one line naming file, line and key.
    """
    return Annotated[Any, PlainValidator(check)]


def model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The sub-model a location points into (``("baseline",)`` -> ``Baseline``), or None."""
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        annotation = fields[part].annotation
        candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) \
            or typing.get_origin(annotation) is typing.Union else (annotation,)
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a user may write in a model (excluded fields are internal)."""
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _first(exc: ValidationError) -> dict:
    """The error to show: an unknown key first (it is often the misspelling of a missing one)."""
    errors = exc.errors(include_url=False)
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def first_invalid(exc: ValidationError) -> Invalid | None:
    """The :class:`Invalid` behind the error :func:`first_error` shows, if a check raised it."""
    cause = (_first(exc).get("ctx") or {}).get("error")
    return cause if isinstance(cause, Invalid) else None


def first_error(exc: ValidationError, model: type[BaseModel]) -> tuple[str | None, str]:
    """(dotted key, message) of the first error pydantic found, in this project's words.

    A check's :class:`Invalid` keeps its message (and its ``key`` for cross-key rules); an
    unknown key lists the known ones with a "did you mean"; a missing one says so.
    """
    err = _first(exc)
    loc = tuple(str(p) for p in err["loc"])
    dotted = ".".join(loc) or None
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, Invalid):
        return cause.key or dotted, str(cause)
    if err["type"] == "extra_forbidden":
        known = keys_of(model_at(model, loc[:-1]) or model)
        listed = (f"one of {', '.join(known)}" if len(known) > 2 else " or ".join(known))
        return dotted, f"unknown key {loc[-1]!r}; expected {listed}{did_you_mean(loc[-1], known)}"
    if err["type"] == "missing":
        return dotted, "missing required key"
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        sub = model_at(model, loc)
        keys = ", ".join(keys_of(sub)) if sub is not None else "keys"
        return dotted, f"{as_written(err.get('input'))} is not a mapping; expected a mapping of {keys}"
    return dotted, " ".join(str(err["msg"]).split())
