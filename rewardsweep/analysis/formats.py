"""How the report writes its numbers: mIoU in points (x100), intervals, p-values, counts.

One place, so the registry's cells (``statistics.py``) and the fixed tables (``render.py``)
write a number the same way. ``–`` stands for "not computed" (NaN, None).
"""

from __future__ import annotations

import math

import numpy as np


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(x)


def pts(x, signed: bool = True, digits: int = 2) -> str:
    """A value in the records' unit as mIoU points: ``+1.32`` (``signed``) or ``61.71``."""
    if not finite(x):
        return "–"
    text = f"{x * 100:+.{digits}f}" if signed else f"{x * 100:.{digits}f}"
    if float(text) == 0:                   # never "-0.00": a sign the number does not have
        text = text.replace("-", "+" if signed else "")
    return text


def ci(lo, hi) -> str:
    return f"[{pts(lo)}, {pts(hi)}]" if finite(lo) and finite(hi) else "–"


def pm(mean, lo, hi) -> str:
    """Mean and the half-width of a symmetric (t) interval, in points: ``+1.32±0.52``."""
    if not finite(mean):
        return "–"
    if not (finite(lo) and finite(hi)):
        return pts(mean)
    return f"{pts(mean)}±{(hi - lo) * 50:.2f}"


def diff(mean, lo, hi) -> str:
    """A difference and its interval, in points: ``+0.84 [+0.41, +1.27]``."""
    return "–" if not finite(mean) else f"{pts(mean)} {ci(lo, hi)}"


def pval(p) -> str:
    if not finite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def num(x, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if finite(x) else "–"


def count(x) -> str:
    return str(int(x)) if finite(x) else "–"
