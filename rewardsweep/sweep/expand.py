"""Expand a validated spec into its trials: every (configuration, arm, seed) to run.

    expansion = expand_study(spec)     # .trials, and the counts a dry run reports
    trials = expand(spec)              # list[TrialPlan]: controls first, then reward configs

Each grid point x sample draw is one reward configuration: the defaults, then ``fixed``,
then the point's values. Each configuration is checked by the trial-config schema
(``config/trial.py``, the same a trial runs), and an error names the spec line that set
the offending value. Whatever the chosen settings ignore (``TrialParams.ignored_keys``) is
set to a canonical value before the configuration is hashed, so points that differ only
there run once (and keep their id). With ``control: mle`` reward configurations sharing a
budget, schedule and start share one cross-entropy control. ``docs/search_spaces.md`` has
the user's view.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rewardsweep.checks import first_error, first_invalid, is_url
from rewardsweep.config.spec_schema import CONTROL_GRID_GROUPS, SPEC_DEFAULTS, SampleSpec, Spec
from rewardsweep.config.trial import ID_KEYS_0_2, NO_REWARD_PART, PARAMS, RUNTIME_FIELDS, TrialParams, default
from rewardsweep.errors import SpecError
from rewardsweep.formatting import format_value
from rewardsweep.study import arms
from rewardsweep.study.arms import ArmKind, links
from rewardsweep.study.layout import trial_name

__all__ = ["TrialPlan", "Expansion", "expand", "expand_study", "config_hash"]

# Ignored top-level reward keys take these values in the config (RewardSettings requires a
# value for them); ignored keys inside baseline/lr/optimizer are None. Tables show "-".
_IGNORED_TOP_VALUE = {"samples": 1, "normalize_advantage": False}


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """One (configuration, arm, seed) to run. ``config`` is what ``run_trial`` takes."""

    config_id: str
    arm: str                  # a name of study.arms.KINDS
    seed: int
    params: dict[str, Any]    # dotted key -> value (what varies or is fixed; for tables)
    config: dict[str, Any]    # the full trial config; ``start`` is None (the launcher fills it)

    @property
    def control_id(self) -> str | None:
        return self.config.get("control_id")

    @property
    def trial_name(self) -> str:
        """The record file's stem, unique in a study (``study.layout.trial_name``)."""
        return trial_name(self.config_id, self.arm, self.seed)

    def __hash__(self) -> int:
        return hash((self.config_id, self.arm, self.seed))


@dataclasses.dataclass(frozen=True)
class Expansion:
    trials: list[TrialPlan]
    points: int               # grid points x samples, before de-duplication
    duplicates: int           # points that turned out identical to an earlier one (run once)
    configs: dict[str, int]   # arm -> its distinct configurations (the arms the spec runs)
    seeds: tuple[int, ...]

    def count(self, arm: str | None = None) -> int:
        return sum(1 for t in self.trials if arm is None or t.arm == arm)

    @property
    def reward_configs(self) -> int:
        return self.configs.get(arms.REWARD.name, 0)

    @property
    def control_configs(self) -> int:
        return self.configs.get(arms.CONTROL.name, 0)

    @property
    def reference_configs(self) -> int:
        return self.configs.get(arms.REFERENCE.name, 0)


def _id_view(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config its id hashes: no run-time fields; keys newer than 0.2.0 only
    when set, inside groups too (``config.trial.ID_KEYS_0_2``: the rule a new key follows;
    a new group with nothing set is left out whole)."""
    view = {}
    for key, value in config.items():
        if key in RUNTIME_FIELDS or (key not in ID_KEYS_0_2 and value is None):
            continue
        known = ID_KEYS_0_2.get(key, ())
        if isinstance(value, dict) and isinstance(known, tuple):
            value = {k: v for k, v in value.items() if k in known or v is not None}
            if not value and key not in ID_KEYS_0_2:
                continue
        view[key] = value
    return view


def config_hash(config: Mapping[str, Any]) -> str:
    """First 8 hex of sha256 of the canonical JSON of a config's id view (:func:`_id_view`).

    Finished trials are found again by this id (top-up, resume): it must not change.
    """
    blob = json.dumps(_id_view(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def expand(spec: Spec) -> list[TrialPlan]:
    """Every (configuration, arm, seed) of the study: controls first, then reward configs.

    Identical configurations (after setting what the chosen settings ignore to None) are
    kept once. ``config["start"]`` is None: the launcher resolves it once per study.
    """
    return expand_study(spec).trials


def expand_study(spec: Spec) -> Expansion:
    """Expand a spec into its trials, with the counts a dry run reports."""
    shown = _shown_keys(spec)
    rewards: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []  # (config, view, params)
    seen: set[str] = set()
    points = duplicates = 0
    grid_points = _grid_points(spec)
    for draw in _draw_samples(spec.sample):
        for point in grid_points:
            points += 1
            config, view, params = _reward_config(spec, point + draw, shown)
            cid = config_hash(view)
            if cid in seen:
                duplicates += 1
                continue
            seen.add(cid)
            config["config_id"] = cid
            rewards.append((config, view, params))
    others: list[tuple[dict[str, Any], dict[str, Any]]] = []
    configs = {arms.REWARD.name: len(rewards)}
    for arm in arms.paired():
        if arm.enabled(spec):
            mine = _pair(spec, arm, rewards, [c for c, _ in others], shown)
            others += mine
            configs[arm.name] = len(mine)
    trials = [plan for config, params in others + [(c, p) for c, _, p in rewards]
              for plan in _per_seed(spec, config, params)]
    return Expansion(trials=trials, points=points, duplicates=duplicates, configs=configs, seeds=spec.seeds)


# --------------------------------------------------------------------------------------
# Points: grid combinations and sample draws, each [(assignment, where it was set), ...]
# --------------------------------------------------------------------------------------


def _grid_points(spec: Spec) -> list[list[tuple[dict[str, Any], str]]]:
    """The cartesian product of the grid, keys in the spec's order."""
    choices = [[(a, f"grid.{k}[{i}]") for i, a in enumerate(values)] for k, values in spec.grid.items()]
    return [list(combo) for combo in itertools.product(*choices)]


def _round_sample(x: float, digits: int = 4) -> float:
    """Sampled reals are rounded to 4 significant digits: readable ids, exact JSON."""
    return float(f"{x:.{digits}g}")


def _draw_samples(sample: SampleSpec | None) -> list[list[tuple[dict[str, Any], str]]]:
    """Deterministic draws: numpy Generator(seed), keys in sorted order (a top-up keeps them)."""
    if sample is None:
        return [[]]
    import numpy as np

    rng = np.random.default_rng(sample.seed)
    draws = []
    for _ in range(sample.num_samples):
        draw: list[tuple[dict[str, Any], str]] = []
        for key in sorted(sample.params):
            kind, arg = sample.params[key]
            at = f"sample.params.{key}.{kind}"
            if kind == "choice":
                i = int(rng.integers(len(arg)))
                draw.append((arg[i], f"{at}[{i}]"))
            elif kind == "uniform":
                draw.append(({key: _round_sample(float(rng.uniform(arg[0], arg[1])))}, at))
            else:
                lo, hi = math.log(arg[0]), math.log(arg[1])
                draw.append(({key: _round_sample(math.exp(float(rng.uniform(lo, hi))))}, at))
        draws.append(draw)
    return draws


def _shown_keys(spec: Spec) -> list[str]:
    """The leaves a table shows: whatever the spec fixes or varies, in schema order."""
    grid_leaves = [leaf for values in spec.grid.values() for a in values for leaf in a]
    sample_leaves = spec.sample.leaves() if spec.sample is not None else []
    shown = list(dict.fromkeys([*spec.fixed, *grid_leaves, *sample_leaves]))
    # class weights on/off is shown whenever one of its sub-keys is
    if any(k.startswith("class_weights.") for k in shown) and "class_weights" not in shown:
        shown.append("class_weights")
    order = list(PARAMS)
    shown.sort(key=order.index)
    return shown


# --------------------------------------------------------------------------------------
# One reward configuration
# --------------------------------------------------------------------------------------


def _reward_config(spec: Spec, point: list[tuple[dict[str, Any], str]],
                   shown: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, hash view, table params) of one point, checked and made canonical.

    ``point``: the (assignment, where it was set) of each grid key, then each sampled key.
    """
    leaves = dict(SPEC_DEFAULTS)
    leaves_at = {k: "default" for k in leaves}   # leaf -> YAML path that set it
    leaves.update(spec.fixed)
    leaves_at.update(spec.origins)
    varied: dict[str, Any] = {}
    for assignment, at in point:
        for leaf, value in assignment.items():
            leaves[leaf] = value
            leaves_at[leaf] = at
            varied[leaf] = value
    _check_budget(spec, leaves, leaves_at)
    canonical = dict(leaves)
    if canonical["lr.schedule"] == "constant":
        canonical["lr.end"] = canonical["lr.start"]      # a constant schedule stays at lr.start
    if not canonical["class_weights"]:
        canonical["class_weights.counts"] = canonical["class_weights.smooth"] = None
    config, _ = _build_config(spec, "reward", canonical)
    try:
        params = TrialParams.model_validate(_schema_input(config), context={"base_dir": spec.path.parent,
                                                                            "num_classes": spec.num_classes})
    except ValidationError as exc:
        raise _trial_error(spec, exc, leaves_at, varied) from None
    shown_values = dict(canonical)
    for key in params.ignored_keys():
        shown_values[key] = None
        canonical[key] = _IGNORED_TOP_VALUE.get(key)
    config, view = _build_config(spec, "reward", canonical)
    table = _table_params(shown_values, shown)
    config["params"] = table
    return config, view, table


def _check_budget(spec: Spec, leaves: dict[str, Any], leaves_at: dict[str, str]) -> None:
    """steps is set, and eval_every fits in it."""
    if leaves["steps"] is None:
        raise SpecError(f"{spec.source}: steps: missing; expected an integer >= 1")
    if spec.eval_every > leaves["steps"]:
        origin = leaves_at.get("steps", "steps")
        origin = "" if origin == "steps" else f" (from {origin}, {spec.where(origin)})"
        raise SpecError(f"{spec.where('eval_every')}: eval_every: {spec.eval_every} is above steps "
                        f"{leaves['steps']}{origin}; expected eval_every <= steps")


def _schema_input(config: dict[str, Any]) -> dict[str, Any]:
    """The parameter part of a trial config, as the schema reads it (a None inside a group
    is that key's default: the groups' own rule, ``reward.settings.SettingsGroup``)."""
    return {key: config[key] for key in TrialParams.model_fields if key in config}


def _build_config(spec: Spec, arm: str, leaves: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trial config without ids/seed, hash view with paths as written in the spec).

    The parameters are nested from their dotted keys; the view keeps paths as written so
    the id is the same wherever the study folder is.
    """
    folder = spec.path.parent

    def abspath(ref: str) -> str:
        if is_url(ref):
            return ref                    # a model-zoo URL: downloaded when the launch resolves the start
        p = Path(os.path.expanduser(ref))
        return str((p if p.is_absolute() else folder / p).resolve())

    config: dict[str, Any] = {
        "study": spec.name, "study_dir": spec.study_dir, "config_id": None, **{k: None for k in links()},
        "arm": arm, "seed": None, "model": spec.model, "data_root": spec.data_root,
        "start": None, "eval_every": spec.eval_every, "threads": spec.threads,
        "workers": spec.resources.get("workers"), "cudnn_benchmark": spec.cudnn_benchmark,
        "diagnostics_every": spec.diagnostics_every, "debug": {},
    }
    for key, value in leaves.items():
        if key in PARAMS and PARAMS[key].kind != "group" and key.split(".")[0] not in ("class_weights", "pretrain"):
            group, _, sub = key.rpartition(".")
            (config.setdefault(group, {}) if group else config)[sub] = value

    def members(name: str) -> dict[str, Any]:
        """The sub-keys of an optional group (pretrain, class_weights), each one of the schema's."""
        return {key.split(".", 1)[1]: value for key, value in leaves.items() if key.startswith(f"{name}.")}

    checkpoint, counts = leaves["checkpoint"], leaves["class_weights.counts"]
    on, pretrain = leaves["class_weights"], members("pretrain")
    config["class_weights"] = members("class_weights") if on else None
    config["pretrain"] = (pretrain if checkpoint == "auto" and any(v is not None for v in pretrain.values())
                          else None)
    if checkpoint != "auto":
        config["checkpoint"] = abspath(checkpoint)
    if on and isinstance(counts, str):
        config["class_weights"]["counts"] = abspath(counts)
    if arms.trains(arm) != "reward":   # an arm without the reward step hashes no reward keys
        config.update(json.loads(json.dumps(NO_REWARD_PART)))
    view = dict(config)
    view["model"] = spec.model_ref if spec.model != spec.model_ref else spec.model
    view["data_root"] = spec.data_root_ref
    if checkpoint != "auto":
        view["checkpoint"] = checkpoint if is_url(checkpoint) else os.path.normpath(checkpoint)
    if arms.trains(arm) == "reward" and on and isinstance(counts, str):
        view["class_weights"] = {**config["class_weights"], "counts": os.path.normpath(counts)}
    return config, view


def _table_params(values: dict[str, Any], shown: list[str]) -> dict[str, Any]:
    """{leaf: value} of the shown leaves; class weights as "on"/"off"."""
    out = {}
    for key in shown:
        value = values.get(key)
        if key == "class_weights":
            value = "on" if value else "off"
        out[key] = value
    return out


# --------------------------------------------------------------------------------------
# Errors in one trial, located at the spec line that set the offending value
# --------------------------------------------------------------------------------------


def _trial_error(spec: Spec, exc: ValidationError, leaves_at: dict[str, str],
                 varied: dict[str, Any]) -> SpecError:
    """The schema's first error in one trial, at the spec line that set a key it is about."""
    key, message = first_error(exc, TrialParams)
    invalid = first_invalid(exc)
    keys = [k for k in (key, *(invalid.also if invalid else ())) if k]
    keys += [k.rsplit(".", 1)[0] for k in keys if "." in k]   # else the group that holds it
    key_set = next((k for k in keys if leaves_at.get(k, "default") != "default"), None)
    trial = ", ".join(f"{k}={format_value(v)}" for k, v in varied.items())
    in_trial = f" (in the trial {trial})" if trial else ""
    if key_set is None:
        return SpecError(f"{spec.source}: {key}: {message} ({key} is the default "
                         f"{format_value(SPEC_DEFAULTS.get(key))}){in_trial}")
    at = leaves_at[key_set]
    named = re.sub(r"\[\d+\]$", "", at)
    shown = named if named.endswith(key_set) else f"{named} ({key_set})"
    return SpecError(f"{spec.where(at)}: {shown}: {message}{in_trial}")


# --------------------------------------------------------------------------------------
# Controls and seeds
# --------------------------------------------------------------------------------------


def _pair(spec: Spec, arm: ArmKind, rewards: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
          earlier: list[dict[str, Any]], shown: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One ``arm`` instance per distinct ``arm.shares`` of the reward configurations; sets
    ``arm.link`` on every reward configuration and on the ``earlier`` arms' instances.

    Its id is hashed from the reward configuration's view (paths as written) with what the
    arm replaces, like every other id, so it is the same wherever the study folder is.
    """
    replaced = {"arm": arm.name, **NO_REWARD_PART, **{k: default(k) for k in arm.resets}}
    shown_here = [k for k in shown if k.split(".")[0] in arm.shows]
    instances: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    variants: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def group(config: dict[str, Any]) -> str:
        return json.dumps({k: config[k] for k in arm.shares}, sort_keys=True)

    for config, view, params in rewards:
        key = group(config)
        if key not in instances:
            iid = config_hash({**view, **replaced})
            own = {k: None for k in links() if k != arm.link}
            iparams = {k: v for k, v in params.items() if k in shown_here}
            instance = {**config, **replaced, "config_id": iid, **own, arm.link: iid, "params": iparams}
            instances[key] = (instance, iparams)
            if arm.variant_label:
                variants += _variants(spec, instance, {**view, **replaced}, shown_here)
    for config in [c for c, _, _ in rewards] + earlier:
        config[arm.link] = instances[group(config)][0]["config_id"]
    # a variant equal to an instance (its own lr, or another budget's) is that instance
    seen = {c["config_id"] for c, _ in instances.values()}
    unique = []
    for config, params in variants:
        if config["config_id"] not in seen:
            seen.add(config["config_id"])
            unique.append((config, params))
    return list(instances.values()) + unique


def _variants(spec: Spec, control: dict[str, Any], view: dict[str, Any],
              shown: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The ``control_grid`` variants of one control: each point its own lr/optimizer, the
    same budget; its ``control_id`` names the control it varies (the report picks the best
    of them as "the best cross-entropy for this budget")."""
    if not spec.control_grid:
        return []
    variant_keys = list(dict.fromkeys(leaf for values in spec.control_grid.values() for a in values for leaf in a))
    return [_control_variant(spec, control, view, point, shown, variant_keys)
            for point in itertools.product(*spec.control_grid.values())]


def _control_variant(spec: Spec, control: dict[str, Any], view: dict[str, Any], point: tuple,
                     shown: list[str], variant_keys: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A control with the lr/optimizer leaves of one control_grid point (canonicalised)."""
    config = json.loads(json.dumps(control))
    view = json.loads(json.dumps(view))
    for assignment in point:
        for leaf, value in assignment.items():
            group, sub = leaf.split(".", 1)
            config[group][sub] = view[group][sub] = value
    try:
        params = TrialParams.model_validate({group: config[group] for group in CONTROL_GRID_GROUPS})
    except ValidationError as exc:
        raise SpecError(f"{spec.where('control_grid')}: control_grid: {first_error(exc, TrialParams)[1]} "
                        f"(in a control arm)") from None
    for c in (config, view):
        if c["lr"]["schedule"] == "constant":
            c["lr"]["end"] = c["lr"]["start"]
        for key in params.ignored_keys():
            group, _, sub = key.partition(".")
            if group in CONTROL_GRID_GROUPS:
                c[group][sub] = None
    config["config_id"] = config_hash(view)
    config["control_id"] = control["config_id"]
    flat = {f"{g}.{k}": v for g in CONTROL_GRID_GROUPS for k, v in config[g].items()}
    params = {k: control["params"].get(k) for k in shown}
    params.update({k: flat.get(k) for k in variant_keys})
    config["params"] = params
    return config, params



def _per_seed(spec: Spec, config: dict[str, Any], params: dict[str, Any]) -> list[TrialPlan]:
    """One TrialPlan per seed of the study, each with a private copy of the config."""
    plans = []
    for seed in spec.seeds:
        c = json.loads(json.dumps(config))
        c["seed"] = seed
        if c["arm"] in spec.checkpoints:
            c["checkpoints"] = "final"   # the trial keeps its final weights (not hashed: RUNTIME_FIELDS)
        plans.append(TrialPlan(config_id=c["config_id"], arm=c["arm"], seed=seed,
                               params=dict(params), config=c))
    return plans
