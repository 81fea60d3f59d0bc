"""Model presets: a name -> a function that builds an MMEngine config for that model + data.

(Work in progress: the foundation issue fills this in.)
"""

from __future__ import annotations

PRESET_NAMES = (
    "tiny-synthetic",
    "deeplabv3-r50-cityscapes",
)


def preset_names() -> tuple[str, ...]:
    return PRESET_NAMES
