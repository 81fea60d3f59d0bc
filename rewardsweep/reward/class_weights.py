"""Class weights from ground-truth pixel counts (``docs/method.md``, "Class weights").

``w_c = 1 / (n_c + s * sum_c' n_c')``, then ``w <- C * w / sum(w)`` (mean weight 1).

The counts file is what ``rewardsweep class-weights`` writes::

    {"dataset": ..., "split": ..., "class_names": [...], "counts": [...],
     "smooth": s, "weights": [...]}

Only ``counts`` is required to read it back; ``class_names`` (when present) must have the
same length, and ``smooth`` is used when the config does not give one.

This module imports torch only inside :func:`class_weights_from_counts`: the spec
validator reads settings (and their counts) without loading torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardsweep.errors import ConfigError

__all__ = ["ClassCounts", "class_weight_values", "class_weights_from_counts", "counts_record", "load_counts"]


@dataclass(frozen=True)
class ClassCounts:
    """Pixel counts per class read from a counts file."""

    counts: tuple[float, ...]
    class_names: tuple[str, ...] | None = None
    smooth: float | None = None
    path: str | None = None


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_counts(counts, num_classes: int | None = None, where: str = "class_weights.counts") -> tuple[float, ...]:
    """Return ``counts`` as a tuple of floats, or raise ConfigError naming ``where``."""
    if hasattr(counts, "tolist"):  # a tensor or an array
        counts = counts.tolist()
    if isinstance(counts, (str, bytes)) or not isinstance(counts, Sequence):
        raise ConfigError(f"{where}: expected a list of per-class pixel counts, got {type(counts).__name__}")
    if len(counts) == 0:
        raise ConfigError(f"{where}: expected a non-empty list of per-class pixel counts")
    bad = [x for x in counts if not _is_number(x) or not math.isfinite(x) or x < 0]
    if bad:
        raise ConfigError(f"{where}: expected finite pixel counts >= 0, got {bad[0]!r}")
    if num_classes is not None and len(counts) != num_classes:
        raise ConfigError(f"{where}: expected {num_classes} counts (one per class), got {len(counts)}")
    return tuple(float(x) for x in counts)


def validate_smooth(smooth, where: str = "class_weights.smooth") -> float:
    if not _is_number(smooth) or not math.isfinite(smooth) or smooth < 0:
        raise ConfigError(f"{where}: expected a number >= 0, got {smooth!r}")
    return float(smooth)


def class_weight_values(counts, smooth: float, num_classes: int | None = None, where: str = "class_weights") -> list[float]:
    """``w_c = 1 / (n_c + s * sum n)``, ``w <- C * w / sum w`` as python floats (mean 1).

    Raises ConfigError (naming ``<where>.counts`` or ``<where>.smooth``) for a wrong length,
    negative counts, negative smoothing, or a zero count with zero smoothing (an infinite
    weight).
    """
    n = validate_counts(counts, num_classes, f"{where}.counts")
    s = validate_smooth(smooth, f"{where}.smooth")
    total = sum(n)
    denom = [c + s * total for c in n]
    if min(denom) <= 0:
        zero = denom.index(min(denom))
        raise ConfigError(
            f"{where}.counts: class {zero} has no pixels and {where}.smooth is {s:g}, so its weight "
            f"would be infinite; expected a smoothing > 0 (or non-zero counts)"
        )
    raw = [1.0 / d for d in denom]
    scale = len(raw) / sum(raw)
    return [x * scale for x in raw]


def class_weights_from_counts(counts, smooth: float, num_classes: int | None = None, where: str = "class_weights"):
    """The per-class weights of :func:`class_weight_values` as a float32 tensor ``[C]``."""
    import torch

    return torch.tensor(class_weight_values(counts, smooth, num_classes, where), dtype=torch.float32)


def load_counts(path) -> ClassCounts:
    """Read a counts file (see the module docstring); ConfigError names the file and key."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: class-weight counts file not found; expected the JSON written by `rewardsweep class-weights`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read class-weight counts file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or "counts" not in data:
        raise ConfigError(f"{p}: counts: missing; expected a JSON object with a 'counts' list")
    counts = validate_counts(data["counts"], where=f"{p}: counts")
    names = data.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise ConfigError(f"{p}: class_names: expected a list of strings")
        if len(names) != len(counts):
            raise ConfigError(f"{p}: counts: {len(counts)} counts for {len(names)} class_names; expected one per class")
        names = tuple(names)
    smooth = data.get("smooth")
    if smooth is not None:
        smooth = validate_smooth(smooth, f"{p}: smooth")
    return ClassCounts(counts=counts, class_names=names, smooth=smooth, path=str(p))


def counts_record(dataset: str, split: str, class_names: Sequence[str], counts, smooth: float) -> dict:
    """The JSON-able dict a counts file holds (the weights are included for reading only)."""
    n = validate_counts(counts, len(class_names))
    weights = class_weight_values(n, smooth)
    return {
        "dataset": dataset,
        "split": split,
        "class_names": list(class_names),
        "counts": [int(c) if float(c).is_integer() else c for c in n],
        "smooth": float(smooth),
        "weights": [round(float(x), 8) for x in weights],
    }
