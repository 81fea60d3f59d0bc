"""Defaults of the trial config (docs/architecture.md): the one place they are written.

The sweep fills a spec's unset keys from here, a trial fills a hand-written config from
here, and the reward settings fall back to here, so the three can never disagree.
Keep this module free of heavy imports (the spec validator loads it).
"""

from __future__ import annotations

import copy
from typing import Any

TRIAL_DEFAULTS: dict[str, Any] = {
    "arm": "reward",
    "seed": 0,
    "data_root": None,
    "steps": 100,
    "eval_every": 50,
    "batch_size": 8,
    "estimator": "reinforce",
    # Reward-tuning defaults chosen by measurement (docs/method.md, "Is my reward arm reward
    # tuning?"): at the same nominal lr an unnormalised policy gradient is ~1/3300 of
    # cross-entropy and ~1/480 of a 5e-4 weight-decay pull, and the aux head's CE is >99% of
    # the update; normalised advantages, no weight decay and no aux CE let the reward move
    # the model. sample_loo needs k >= 2 (and without a baseline normalisation collapses).
    "samples": 2,
    "baseline": {"kind": "sample_loo", "coef": 1.0, "decay": 0.9},
    "normalize_advantage": True,
    "lr": {"start": 1e-4, "end": 1e-6, "schedule": "poly", "power": 0.9},
    "optimizer": {"type": "SGD", "momentum": 0.9, "weight_decay": 0.0},
    "class_weights": None,
    "aux_head": "off",
    "threads": 1,
    "diagnostics_every": 20,
    "debug": {},
}


def default(key: str) -> Any:
    """The default of a dotted key, e.g. ``default("baseline.kind") == "none"``."""
    node: Any = TRIAL_DEFAULTS
    for part in key.split("."):
        node = node[part]
    return copy.deepcopy(node)


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every unset (or None) nested key taken from the defaults."""
    merged = copy.deepcopy(TRIAL_DEFAULTS)
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **{k: v for k, v in value.items() if v is not None}}
        else:
            merged[key] = copy.deepcopy(value)
    return merged
