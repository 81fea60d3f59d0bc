"""Learning-rate schedules start -> end over the tuning steps, as MMEngine param schedulers.

The names here are the ones the trial-config schema accepts (``config/trial.py``); the
schema has already checked the values (start > 0, end <= start, end == start when
constant), so this only translates. Pure Python.
"""

from __future__ import annotations

SCHEDULES = ("poly", "cosine", "linear", "exponential", "constant")


def lr_schedulers(lr: dict, steps: int) -> list[dict]:
    """MMEngine ``param_scheduler`` entries that take the lr from ``lr.start`` to ``lr.end``."""
    start, end = float(lr["start"]), float(lr.get("end", lr["start"]))
    shape = lr.get("schedule", "poly")
    common = dict(by_epoch=False, begin=0, end=steps)
    if shape == "poly":
        return [dict(type="PolyLR", eta_min=end, power=float(lr.get("power") or 0.9), **common)]
    if shape == "cosine":
        return [dict(type="CosineAnnealingLR", T_max=steps, eta_min=end, **common)]
    if shape == "linear":
        return [dict(type="LinearLR", start_factor=1.0, end_factor=end / start, **common)]
    if shape == "exponential":
        return [dict(type="ExponentialLR", gamma=(end / start) ** (1.0 / max(steps, 1)), **common)]
    if shape == "constant":
        return [dict(type="ConstantLR", factor=1.0, **common)]
    raise ValueError(f"lr.schedule: unknown schedule {shape!r}")  # the schema lists SCHEDULES
