"""Learning-rate schedules start -> end over the tuning steps, as MMEngine param schedulers."""

from __future__ import annotations

from rewardsweep.errors import ConfigError

SCHEDULES = ("poly", "cosine", "linear", "exponential", "constant")


def lr_schedulers(lr: dict, steps: int) -> list[dict]:
    """MMEngine ``param_scheduler`` entries that take the lr from ``lr.start`` to ``lr.end``."""
    start, end = float(lr["start"]), float(lr.get("end", lr["start"]))
    shape = lr.get("schedule", "poly")
    if start <= 0 or end < 0:
        raise ConfigError(f"lr: start must be > 0 and end >= 0 (got start={start}, end={end})")
    if end > start:
        raise ConfigError(f"lr.end: {end} is above lr.start {start} (a tuning schedule decays)")
    common = dict(by_epoch=False, begin=0, end=steps)
    if shape == "poly":
        return [dict(type="PolyLR", eta_min=end, power=float(lr.get("power") or 0.9), **common)]
    if shape == "cosine":
        return [dict(type="CosineAnnealingLR", T_max=steps, eta_min=end, **common)]
    if shape == "linear":
        return [dict(type="LinearLR", start_factor=1.0, end_factor=end / start, **common)]
    if shape == "exponential":
        if end <= 0:
            raise ConfigError("lr.end: the exponential schedule needs end > 0")
        return [dict(type="ExponentialLR", gamma=(end / start) ** (1.0 / max(steps, 1)), **common)]
    if shape == "constant":
        if end != start:
            raise ConfigError(f"lr.end: a constant schedule keeps lr.start ({start}); got end={end}")
        return [dict(type="ConstantLR", factor=1.0, **common)]
    raise ConfigError(f"lr.schedule: unknown schedule '{shape}' (expected one of {', '.join(SCHEDULES)})")
