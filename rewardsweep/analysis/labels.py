"""The one name of a configuration, in the report (tables, plots, console) and in W&B.

A label is the parameters that vary between the study's reward configurations, by their
full spec names in sorted order (a value the configuration does not set is left out),
then the config id: ``baseline.coef=1 baseline.kind=batch_loo [4dfe4838]``. A paired
control is ``control (mle) [id]``, a ``control_grid`` variant ``cross-entropy, own lr
lr.start=0.03 [id]`` (plus what tells the variants apart), the no-op reference
``no-op reference [id]``. The report labels the configurations its records hold
(:mod:`.summary`); a launch labels the W&B runs of a spec's trials with :func:`plan_labels`,
the same rule, so searching W&B for a label from the report finds its runs.
Plain Python: the launch's driver and the report both import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from rewardsweep.study import arms as kinds

# arm -> the words its label starts with (study.arms; "tuned": a control_grid variant)
ARM_NAMES = {name: kinds.label_prefix(name) for name in (*kinds.NAMES, "tuned") if kinds.label_prefix(name)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _key(value: Any) -> str:
    """What two values are compared by: a number by its value (2 == 2.0), missing as '–'."""
    if _missing(value):
        return "–"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def varying_keys(values: Mapping[str, Iterable[Any]]) -> list[str]:
    """The keys whose values are not all the same (a missing value counts as one), sorted."""
    return sorted(k for k, vs in values.items() if len({_key(v) for v in vs}) > 1)


def params_label(row: Mapping[str, Any], keys: Iterable[str], prefix: str = "") -> str:
    """``baseline.kind=greedy lr.start=0.0001``: ``keys`` of ``row`` that have a value
    (``prefix``, a column-name prefix, is not shown)."""
    parts = []
    for col in keys:
        value = row.get(col)
        if _missing(value):
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{col.removeprefix(prefix)}={value}")
    return " ".join(parts)


def config_label(params: str, config_id: str, arm: str) -> str:
    """The one name of a configuration in every output: its parameters, then its id.
    ``arm``: a name of ``study.arms.KINDS``, or tuned (a control_grid variant)."""
    name = f"{ARM_NAMES[arm]} {params}".strip() if arm in ARM_NAMES else (params or "(no varied parameter)")
    return f"{name} [{config_id}]"


def plan_labels(plans: Iterable[Any]) -> dict[str, str]:
    """{config id: label} of a spec's trials (anything with ``config_id``, ``arm``,
    ``params`` and ``config["control_id"]``), by the report's rule."""
    configs: dict[str, Any] = {}
    for plan in plans:
        configs.setdefault(plan.config_id, plan)
    keys = sorted({k for p in configs.values() for k in p.params})

    def columns(arm: str) -> dict[str, list]:
        mine = [p.params for p in configs.values() if p.arm == arm]
        return {k: [params.get(k) for params in mine] for k in keys} if mine else {}

    varying = varying_keys(columns(kinds.REWARD.name))
    ctrl_varying = [k for k in varying_keys(columns(kinds.CONTROL.name)) if k not in varying]
    labels = {}
    for cid, plan in configs.items():
        control = (plan.config or {}).get("control_id")
        tuned = plan.arm == kinds.CONTROL.name and control not in (None, cid)
        shown = params_label(plan.params, sorted(varying + ctrl_varying) if tuned else varying)
        labels[cid] = config_label(shown, cid, "tuned" if tuned else plan.arm)
    return labels
