"""How a value is written for people, in one place so messages and tables agree.

- :func:`as_written`: a value as the user would have typed it in the YAML (strings
  quoted, ``null``, ``true``), for "X is not allowed" messages about what they wrote.
- :func:`format_value`: a parameter value in a table or a trial's description (short,
  ``-`` for "ignored/not used").
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["as_written", "format_value"]


def as_written(value: Any) -> str:
    """``'gredy'``, ``null``, ``true``, ``[1, 2]``: a value quoted the way YAML spells it."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)


def format_value(value: Any) -> str:
    """A parameter value as a table shows it (None: ``-``, meaning "ignored/not used")."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        text = "[" + ",".join(format_value(v) for v in value) + "]"
        return text if len(text) <= 24 else f"[{len(value)} values]"
    if isinstance(value, str) and os.sep in value and len(value) > 28:
        return "..." + value[-25:]
    return str(value)
