"""Timestamps in records and study files: ISO 8601, UTC (``2026-12-01T12:15:58+00:00``).

Study folders written before 0.2 also hold local times with a ``+0100``-style offset
(``%z``). Compare timestamps with :func:`timestamp_key`, never as strings: two formats
or two time zones do not sort as text.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any


def utc_now() -> str:
    """Now, in UTC, to the second: ``2026-12-01T12:15:58+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def parse_timestamp(value: Any) -> _dt.datetime | None:
    """An aware datetime from either format (a time without offset is read as UTC), or
    None for anything that is not a timestamp."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_dt.timezone.utc)


def timestamp_key(value: Any) -> float:
    """Seconds since the epoch, for ordering; ``-inf`` for a missing or unreadable one
    (so it sorts before any real time)."""
    parsed = parse_timestamp(value)
    return parsed.timestamp() if parsed is not None else -math.inf
