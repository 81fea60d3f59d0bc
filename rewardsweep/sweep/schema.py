"""What a search space may say: its top-level keys, and the trial parameters it may set.

Each parameter (a dotted trial-config key, ``docs/search_spaces.md``) has a check that
returns the value or raises :class:`Invalid` with what was expected, so the reader of a
spec can add the file, line and key. The allowed names of estimators, baselines,
auxiliary heads and schedules come from the code that runs them, so the spec cannot
accept a value a trial would reject. Pure Python: importing this loads no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Any, Callable

from rewardsweep.reward.settings import AUX_HEADS, BASELINES, ESTIMATORS
from rewardsweep.runners.schedules import SCHEDULES
from rewardsweep.sweep.formatting import as_written
from rewardsweep.trial_config import default

__all__ = [
    "AUX_HEADS", "BASELINES", "ESTIMATORS", "SCHEDULES", "OPTIMIZERS", "WANDB_MODES", "CONTROLS", "REFERENCES", "CONTROL_GRID_GROUPS",
    "Invalid", "Param", "PARAM_KEYS", "GROUPS", "REAL_KEYS", "DEFAULTS", "TOP_KEYS",
    "TOP_LEVEL_PARAMS", "STUDY_NAME",
    "one_of", "int_at_least", "number_between", "boolean", "or_null",
]

OPTIMIZERS = ("SGD", "Adam", "AdamW")
WANDB_MODES = ("offline", "online", "disabled")
CONTROLS = ("mle", "none")
REFERENCES = ("noop", "none")
# What a control_grid may vary: the cross-entropy arm's own learning rate and optimizer.
CONTROL_GRID_GROUPS = ("lr", "optimizer")


class Invalid(ValueError):
    """A value that does not fit; the message says what was expected."""


# --------------------------------------------------------------------------------------
# Checks: each returns the (normalised) value or raises Invalid
# --------------------------------------------------------------------------------------


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    """One of ``choices``; a near miss gets a "did you mean" hint."""
    def check(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return value
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise Invalid(f"{as_written(value)} is not allowed; expected one of {', '.join(choices)}{hint}")

    return check


def int_at_least(lo: int) -> Callable[[Any], int]:
    """An integer ``>= lo`` (a whole float such as ``2.0`` counts; a boolean does not)."""
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
                   hi_open: bool = False) -> Callable[[Any], float]:
    """A finite number within the bounds given (open bounds exclude the bound itself)."""
    def describe() -> str:
        parts = []
        if lo is not None:
            parts.append(f"{'>' if lo_open else '>='} {lo:g}")
        if hi is not None:
            parts.append(f"{'<' if hi_open else '<='} {hi:g}")
        return "a number" + (" " + " and ".join(parts) if parts else "")

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"{as_written(value)} is not a number; expected {describe()}")
        value = float(value)
        if not math.isfinite(value):
            raise Invalid(f"{value} is not finite; expected {describe()}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise Invalid(f"{value:g} is out of range; expected {describe()}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise Invalid(f"{value:g} is out of range; expected {describe()}")
        return value

    return check


def boolean(value: Any) -> bool:
    """``true`` or ``false`` only (YAML 1.2: ``on``/``off`` are strings)."""
    if isinstance(value, bool):
        return value
    raise Invalid(f"{as_written(value)} is not a boolean; expected true or false")


def or_null(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``check``, or None for ``null``."""
    def wrapped(value: Any) -> Any:
        return None if value is None else check(value)

    return wrapped


def _class_counts(value: Any) -> Any:
    """class_weights.counts: a list of pixel counts, or a .json path (existence checked later)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(
            not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
            for v in value):
        return [int(v) if float(v).is_integer() else float(v) for v in value]
    raise Invalid(f"{as_written(value)} is not class counts; expected a non-empty list of per-class "
                  f"pixel counts (numbers >= 0) or a .json file written by `rewardsweep class-weights`")


def _checkpoint(value: Any) -> str:
    """auto or a path (existence checked later, against the spec's folder)."""
    if isinstance(value, str) and value:
        return value
    raise Invalid(f"{as_written(value)} is not a checkpoint; expected auto or a path to a .pth file")


# --------------------------------------------------------------------------------------
# The parameters (trial-config keys a study may set under fixed, grid or sample)
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Param:
    check: Callable[[Any], Any]
    help: str
    kind: str = "value"  # "value" | "int" (sampled with choice only) | "path" (resolved)


# In this order in tables.
PARAM_KEYS: dict[str, Param] = {
    "estimator": Param(one_of(ESTIMATORS), "how the reward becomes a gradient"),
    "samples": Param(int_at_least(1), "k labellings sampled per image (reinforce)", "int"),
    "baseline.kind": Param(one_of(BASELINES), "variance-reduction baseline (reinforce)"),
    "baseline.coef": Param(number_between(0.0), "beta: batch_loo coefficient, or reward_weighted_ce's"),
    "baseline.decay": Param(number_between(0.0, 1.0, lo_open=True, hi_open=True), "ema baseline decay"),
    "normalize_advantage": Param(boolean, "divide the advantage by its batch std"),
    "lr.start": Param(number_between(0.0, lo_open=True), "learning rate at step 0"),
    "lr.end": Param(number_between(0.0), "learning rate at the last step"),
    "lr.schedule": Param(one_of(SCHEDULES), "shape of the start -> end decay"),
    "lr.power": Param(number_between(0.0, lo_open=True), "poly schedule power"),
    "optimizer.type": Param(one_of(OPTIMIZERS), "torch optimizer"),
    "optimizer.momentum": Param(number_between(0.0, 1.0, hi_open=True), "SGD momentum"),
    "optimizer.weight_decay": Param(number_between(0.0), "weight decay"),
    "class_weights": Param(lambda v: v, "class weights: null/false (off) or {counts, smooth}"),
    "class_weights.counts": Param(_class_counts, "per-class pixel counts or a .json file", "path"),
    "class_weights.smooth": Param(number_between(0.0), "class-weight smoothing s"),
    "aux_head": Param(one_of(AUX_HEADS), "auxiliary head: off, keep its MLE loss, or reward"),
    "steps": Param(int_at_least(1), "reward-tuning steps", "int"),
    "checkpoint": Param(_checkpoint, "start checkpoint: auto or a path", "path"),
    "batch_size": Param(int_at_least(1), "images per step", "int"),
    "pretrain.iters": Param(or_null(int_at_least(1)), "MLE pretraining iterations for checkpoint auto "
                            "(null: the preset's default)", "int"),
}
# Groups take a mapping of their sub-keys as one value (``lr: {start: ..., end: ...}``).
GROUPS = ("baseline", "lr", "optimizer", "class_weights", "pretrain")
# Keys that uniform/loguniform may draw (real-valued).
REAL_KEYS = ("baseline.coef", "baseline.decay", "lr.start", "lr.end", "lr.power",
             "optimizer.momentum", "optimizer.weight_decay", "class_weights.smooth")

DEFAULTS: dict[str, Any] = {
    **{key: default(key) for key in (
        "estimator", "samples", "baseline.kind", "baseline.coef", "baseline.decay",
        "normalize_advantage", "lr.start", "lr.end", "lr.schedule", "lr.power", "optimizer.type",
        "optimizer.momentum", "optimizer.weight_decay", "aux_head", "batch_size")},
    # Spec-only keys: the switch and smoothing of class weights, the start checkpoint.
    "class_weights": False,          # internal on/off switch; the config holds None when off
    "class_weights.counts": None,
    "class_weights.smooth": 0.05,
    "checkpoint": "auto",
    "pretrain.iters": None,
}

# --------------------------------------------------------------------------------------
# The top level of a spec
# --------------------------------------------------------------------------------------

# Top-level keys of a spec and whether they are required (in this order in messages).
TOP_KEYS: dict[str, bool] = {
    "name": True, "description": False, "model": True, "data_root": False, "checkpoint": False,
    "pretrain": False, "seeds": True, "steps": False, "eval_every": True, "batch_size": False,
    "control": False, "control_grid": False, "reference": False, "diagnostics_every": False,
    "fixed": False, "grid": False, "sample": False, "resources": False,
    "max_concurrent": False, "storage": False, "wandb": False, "retries": False,
}
# Parameters that may also be given at the top level (as well as under fixed/grid/sample).
TOP_LEVEL_PARAMS = ("steps", "checkpoint", "batch_size")

# A study name: it names the folder <storage>/<name>.
STUDY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
