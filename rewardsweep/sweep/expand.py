"""Expand a validated spec into its trials: every (configuration, arm, seed) to run.

    expansion = expand_study(spec)     # .trials, and the counts a dry run reports
    trials = expand(spec)              # list[TrialPlan]: controls first, then reward configs

Each grid point x sample draw is one reward configuration: the defaults, then ``fixed``,
then the point's values. Whatever the chosen settings ignore is set to a canonical value
before the configuration is hashed, so points that differ only there run once (and keep
their id). Each configuration's reward part is checked by ``RewardSettings.from_config``,
the same code a trial runs, and an error names the spec line that set the offending
value. With ``control: mle`` reward configurations sharing a budget, schedule and start
share one cross-entropy control. ``docs/search_spaces.md`` has the user's view.
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
from typing import TYPE_CHECKING, Any

from rewardsweep.errors import ConfigError, SpecError
from rewardsweep.sweep.formatting import format_value
from rewardsweep.sweep.schema import DEFAULTS, PARAM_KEYS
from rewardsweep.trial_config import default

if TYPE_CHECKING:
    from rewardsweep.sweep.spec import SampleSpec, Spec

__all__ = ["TrialPlan", "Expansion", "expand", "expand_study", "config_hash", "RUNTIME_FIELDS",
           "CONTROL_KEYS", "REFERENCE_KEYS"]

# Fields of a trial config that do not define the configuration (not hashed).
RUNTIME_FIELDS = ("seed", "study_dir", "start", "threads", "config_id", "control_id", "debug",
                  "params", "reference_id", "diagnostics_every")
# What one control (cross-entropy) config is shared by.
CONTROL_KEYS = ("model", "data_root", "checkpoint", "pretrain", "steps", "eval_every",
                "batch_size", "lr", "optimizer")
# What one no-op reference is shared by (it never steps: lr and optimizer do not matter).
REFERENCE_KEYS = ("model", "data_root", "checkpoint", "pretrain", "steps", "eval_every", "batch_size")
# Parameter groups a control's table row shows (those it shares with its reward configs).
_CONTROL_PARAMS = ("lr", "optimizer", "steps", "checkpoint", "batch_size", "pretrain")
# Ignored top-level reward keys take these values in the config (RewardSettings requires a
# value for them); ignored keys inside baseline/lr/optimizer are None. Tables show "-".
_IGNORED_TOP_VALUE = {"samples": 1, "normalize_advantage": False}


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """One (configuration, arm, seed) to run. ``config`` is what ``run_trial`` takes."""

    config_id: str
    arm: str                  # "reward" | "mle"
    seed: int
    params: dict[str, Any]    # dotted key -> value (what varies or is fixed; for tables)
    config: dict[str, Any]    # the full trial config; ``start`` is None (the launcher fills it)

    @property
    def control_id(self) -> str | None:
        return self.config.get("control_id")

    @property
    def trial_name(self) -> str:
        """``<config_id>-<arm>-seed<seed>``: the record file's stem, unique in a study."""
        return f"{self.config_id}-{self.arm}-seed{self.seed}"

    def __hash__(self) -> int:
        return hash((self.config_id, self.arm, self.seed))


@dataclasses.dataclass(frozen=True)
class Expansion:
    trials: list[TrialPlan]
    points: int               # grid points x samples, before de-duplication
    duplicates: int           # points that turned out identical to an earlier one (run once)
    reward_configs: int
    control_configs: int
    seeds: tuple[int, ...]
    reference_configs: int = 0

    def count(self, arm: str | None = None) -> int:
        return sum(1 for t in self.trials if arm is None or t.arm == arm)


def config_hash(config: Mapping[str, Any]) -> str:
    """First 8 hex of sha256 of the canonical JSON of a config minus run-time fields.

    Finished trials are found again by this id (top-up, resume): it must not change.
    """
    view = {k: v for k, v in config.items() if k not in RUNTIME_FIELDS}
    blob = json.dumps(view, sort_keys=True, separators=(",", ":"), allow_nan=False)
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
    controls = _pair_controls(spec, rewards, shown) if spec.control == "mle" else []
    references = (_pair_references([(c, v) for c, v, _ in rewards], [c for c, _ in controls])
                  if spec.reference == "noop" else [])
    trials = [plan for config, params in controls + references + [(c, p) for c, _, p in rewards]
              for plan in _per_seed(spec, config, params)]
    return Expansion(trials=trials, points=points, duplicates=duplicates,
                     reward_configs=len(rewards), control_configs=len(controls), seeds=spec.seeds,
                     reference_configs=len(references))


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
    order = list(PARAM_KEYS)
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
    leaves = dict(DEFAULTS)
    leaves["steps"] = None
    leaves_at = {k: "default" for k in leaves}   # leaf -> YAML path that set it
    leaves.update(spec.fixed)
    leaves_at.update(spec.origins)
    varied: dict[str, Any] = {}
    for assignment, at in point:
        for leaf, value in assignment.items():
            leaves[leaf] = value
            leaves_at[leaf] = at
            varied[leaf] = value
    _check_trial(spec, leaves, leaves_at, varied)
    canonical = dict(leaves)
    _canonicalise_common(canonical)
    config, _ = _build_config(spec, "reward", canonical)
    ignored = _check_reward_settings(spec, config, leaves, leaves_at, varied)
    shown_values = dict(canonical)
    for key in ignored:
        shown_values[key] = None
        canonical[key] = _IGNORED_TOP_VALUE.get(key)
    config, view = _build_config(spec, "reward", canonical)
    params = _table_params(shown_values, shown)
    config["params"] = params
    return config, view, params


def _check_trial(spec: Spec, leaves: dict[str, Any], leaves_at: dict[str, str],
                 varied: dict[str, Any]) -> None:
    """Cross-key checks on one trial's (pre-canonical) values."""
    if leaves["steps"] is None:
        raise _trial_error(spec, leaves_at, ("steps",), "missing; expected an integer >= 1", varied)
    if spec.eval_every > leaves["steps"]:
        origin = leaves_at.get("steps", "steps")
        origin = "" if origin == "steps" else f" (from {origin}, {spec.where(origin)})"
        raise SpecError(f"{spec.where('eval_every')}: eval_every: {spec.eval_every} is above steps "
                        f"{leaves['steps']}{origin}; expected eval_every <= steps")
    if leaves["lr.schedule"] != "constant" and leaves["lr.end"] > leaves["lr.start"]:
        raise _trial_error(spec, leaves_at, ("lr.end", "lr.start"),
                           f"schedule end {leaves['lr.end']:g} is above lr.start "
                           f"{leaves['lr.start']:g}; expected end <= start", varied)
    if leaves["class_weights"] and leaves["class_weights.counts"] is None:
        raise _trial_error(spec, leaves_at, ("class_weights", "class_weights.smooth"),
                           "class weights are on but class_weights.counts is not given; expected "
                           "counts: a list of per-class pixel counts or a .json file", varied)


def _canonicalise_common(c: dict[str, Any]) -> None:
    """Set what the chosen settings ignore (outside the reward settings) to canonical values."""
    if c["lr.schedule"] != "poly":
        c["lr.power"] = None
    if c["lr.schedule"] == "constant":
        c["lr.end"] = c["lr.start"]      # a constant schedule stays at lr.start
    if c["optimizer.type"] != "SGD":
        c["optimizer.momentum"] = None
    if c["checkpoint"] != "auto":
        c["pretrain.iters"] = None
    if not c["class_weights"]:
        c["class_weights.counts"] = None
        c["class_weights.smooth"] = None


def _check_reward_settings(spec: Spec, config: dict[str, Any], leaves: dict[str, Any],
                           leaves_at: dict[str, str], varied: dict[str, Any]) -> tuple[str, ...]:
    """Validate the reward part with the trial's own code; return the keys it ignores."""
    try:
        from rewardsweep.reward.settings import RewardSettings
    except ImportError:
        RewardSettings = None  # noqa: N806  (not importable: the checks below stand in)
    if RewardSettings is not None:
        try:
            settings = RewardSettings.from_config(_as_run_trial_reads(config), source=spec.source,
                                                  batch_size=config["batch_size"], num_classes=None)
        except ConfigError as exc:
            raise _settings_error(spec, exc, leaves_at, varied) from None
        return tuple(settings.ignored_keys())
    if leaves["estimator"] == "reinforce" and leaves["baseline.kind"] == "sample_loo" and leaves["samples"] < 2:
        raise _trial_error(spec, leaves_at, ("baseline.kind", "samples"),
                           f"'sample_loo' needs samples >= 2 per image, got samples={leaves['samples']}",
                           varied)
    if leaves["estimator"] == "reward_weighted_ce" and leaves["baseline.kind"] not in ("none", "batch_loo"):
        raise _trial_error(spec, leaves_at, ("baseline.kind",),
                           f"estimator 'reward_weighted_ce' got baseline {leaves['baseline.kind']!r}; "
                           f"expected none (beta = 0) or batch_loo (beta = coef)", varied)
    if leaves["baseline.kind"] == "batch_loo" and leaves["batch_size"] < 2:
        raise _trial_error(spec, leaves_at, ("baseline.kind", "batch_size"),
                           f"'batch_loo' needs batch_size >= 2, got batch_size={leaves['batch_size']}",
                           varied)
    return _ignored_without_settings(leaves)


def _ignored_without_settings(leaves: dict[str, Any]) -> tuple[str, ...]:
    """The rules of ``RewardSettings.ignored_keys`` (used only if it cannot be imported)."""
    ignored = []
    if leaves["estimator"] == "reward_weighted_ce":
        ignored += ["samples", "normalize_advantage"]
    if leaves["baseline.kind"] != "batch_loo":
        ignored.append("baseline.coef")
    if leaves["baseline.kind"] != "ema" or leaves["estimator"] != "reinforce":
        ignored.append("baseline.decay")
    return tuple(ignored)


def _as_run_trial_reads(config: dict[str, Any]) -> dict[str, Any]:
    """The config as ``run_trial`` hands it to RewardSettings (None inside a group = default)."""
    out = dict(config)
    for group in ("baseline", "lr", "optimizer"):
        if isinstance(out.get(group), dict):
            out[group] = {k: v for k, v in out[group].items() if v is not None}
    return out


def _build_config(spec: Spec, arm: str, leaves: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trial config without ids/seed, hash view with paths as written in the spec).

    The view keeps paths as written so the id is the same wherever the study folder is.
    """
    reward = arm == "reward"
    folder = spec.path.parent

    def abspath(ref: str) -> str:
        p = Path(os.path.expanduser(ref))
        return str((p if p.is_absolute() else folder / p).resolve())

    counts = leaves["class_weights.counts"]
    class_weights = None
    if reward and leaves["class_weights"]:
        class_weights = {"counts": counts, "smooth": leaves["class_weights.smooth"]}
    checkpoint = leaves["checkpoint"]
    config: dict[str, Any] = {
        "study": spec.name,
        "study_dir": spec.study_dir,
        "config_id": None,
        "control_id": None,
        "reference_id": None,
        "arm": arm,
        "seed": None,
        "model": spec.model,
        "data_root": spec.data_root,
        "checkpoint": checkpoint if checkpoint == "auto" else abspath(checkpoint),
        "pretrain": ({"iters": leaves["pretrain.iters"]}
                     if checkpoint == "auto" and leaves["pretrain.iters"] is not None else None),
        "start": None,
        "steps": leaves["steps"],
        "eval_every": spec.eval_every,
        "batch_size": leaves["batch_size"],
        "estimator": leaves["estimator"] if reward else None,
        "samples": leaves["samples"] if reward else None,
        "baseline": {
            "kind": leaves["baseline.kind"] if reward else None,
            "coef": leaves["baseline.coef"] if reward else None,
            "decay": leaves["baseline.decay"] if reward else None,
        },
        "normalize_advantage": leaves["normalize_advantage"] if reward else None,
        "lr": {"start": leaves["lr.start"], "end": leaves["lr.end"],
               "schedule": leaves["lr.schedule"], "power": leaves["lr.power"]},
        "optimizer": {"type": leaves["optimizer.type"], "momentum": leaves["optimizer.momentum"],
                      "weight_decay": leaves["optimizer.weight_decay"]},
        "class_weights": class_weights,
        "aux_head": leaves["aux_head"] if reward else "mle",
        "threads": spec.threads,
        "diagnostics_every": spec.diagnostics_every,
        "debug": {},
    }
    if class_weights and isinstance(counts, str):
        class_weights["counts"] = abspath(counts)
    view = dict(config)
    view["model"] = spec.model_ref if spec.model != spec.model_ref else spec.model
    view["data_root"] = spec.data_root_ref
    if checkpoint != "auto":
        view["checkpoint"] = os.path.normpath(checkpoint)
    if class_weights and isinstance(counts, str):
        view["class_weights"] = {"counts": os.path.normpath(counts), "smooth": class_weights["smooth"]}
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


def _setter(keys: tuple[str, ...], leaves_at: dict[str, str]) -> tuple[str, str]:
    """(key, YAML path): the first of ``keys`` the spec sets, else the first key and "default"."""
    key = next((k for k in keys if leaves_at.get(k, "default") != "default"), keys[0])
    return key, leaves_at.get(key, "default")


def _in_trial(varied: dict[str, Any]) -> str:
    """`` (in the trial k=v, ...)``: which point of the grid/sample failed ("" if none varies)."""
    trial = ", ".join(f"{k}={format_value(v)}" for k, v in varied.items())
    return f" (in the trial {trial})" if trial else ""


def _trial_error(spec: Spec, leaves_at: dict[str, str], keys: tuple[str, ...], message: str,
                 varied: dict[str, Any]) -> SpecError:
    """An error in one trial, located at the first of ``keys`` (non-empty) that the spec sets."""
    message = " ".join(message.split())
    key, at = _setter(keys, leaves_at)
    if at == "default":
        return SpecError(f"{spec.source}: {key}: {message} ({key} is the default "
                         f"{format_value(DEFAULTS.get(key))}){_in_trial(varied)}")
    named = re.sub(r"\[\d+\]$", "", at)
    shown = named if named.endswith(key) else f"{named} ({key})"
    return SpecError(f"{spec.where(at)}: {shown}: {message}{_in_trial(varied)}")


def _settings_error(spec: Spec, exc: ConfigError, leaves_at: dict[str, str],
                    varied: dict[str, Any]) -> SpecError:
    """RewardSettings' one-line message, located at the spec line that set the key it names."""
    message = " ".join(str(exc).split())
    for prefix in (f"{spec.source}: ", f"{spec.source}:"):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    key = getattr(exc, "key", None)
    keys = (key,) if key in PARAM_KEYS else ()
    keys += tuple(k for k in sorted(PARAM_KEYS, key=len, reverse=True)
                  if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", message) and k not in keys)
    key, at = _setter(keys, leaves_at) if keys else (None, "default")
    if at == "default":
        return SpecError(f"{spec.source}: {message}{_in_trial(varied)}")
    named = re.sub(r"\[\d+\]$", "", at)
    if message.startswith(f"{key}: ") and named.endswith(key):
        message = message[len(key) + 2:]
    return SpecError(f"{spec.where(at)}: {named}: {message}{_in_trial(varied)}")


# --------------------------------------------------------------------------------------
# Controls and seeds
# --------------------------------------------------------------------------------------


def _pair_controls(spec: Spec, rewards: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
                   shown: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One cross-entropy control per distinct CONTROL_KEYS; sets each reward's control_id.

    Each ``control_grid`` point adds a variant of every control (its own lr/optimizer, the
    same budget) whose ``control_id`` names the paired control it varies: the report picks
    the best of them as "the best cross-entropy for this budget".
    """
    control_shown = [k for k in shown if k.split(".")[0] in _CONTROL_PARAMS]
    variant_keys = list(dict.fromkeys(leaf for values in spec.control_grid.values() for a in values for leaf in a))
    controls: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    variants: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for config, view, params in rewards:
        key = json.dumps({k: config[k] for k in CONTROL_KEYS}, sort_keys=True)
        if key not in controls:
            cross_entropy = {
                "arm": "mle", "estimator": None, "samples": None,
                "baseline": {"kind": None, "coef": None, "decay": None},
                "normalize_advantage": None, "class_weights": None, "aux_head": "mle",
            }
            ccfg = {**config, **cross_entropy}
            cid = config_hash({**view, **cross_entropy})
            ccfg["config_id"] = cid
            ccfg["control_id"] = cid
            cparams = {k: v for k, v in params.items() if k in control_shown}
            ccfg["params"] = cparams
            controls[key] = (ccfg, cparams)
            for point in itertools.product(*spec.control_grid.values()) if spec.control_grid else ():
                variants.append(_control_variant(spec, ccfg, {**view, **cross_entropy}, point,
                                                 control_shown, variant_keys))
        config["control_id"] = controls[key][0]["config_id"]
    # a variant equal to a paired control (its own lr, or another budget's) is that control
    seen = {c["config_id"] for c, _ in controls.values()}
    unique = []
    for config, params in variants:
        if config["config_id"] not in seen:
            seen.add(config["config_id"])
            unique.append((config, params))
    return list(controls.values()) + unique


def _control_variant(spec: Spec, control: dict[str, Any], view: dict[str, Any], point: tuple,
                     shown: list[str], variant_keys: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A control with the lr/optimizer leaves of one control_grid point (canonicalised)."""
    config = json.loads(json.dumps(control))
    view = json.loads(json.dumps(view))
    for assignment in point:
        for leaf, value in assignment.items():
            group, sub = leaf.split(".", 1)
            config[group][sub] = view[group][sub] = value
    for c in (config, view):
        if c["lr"]["schedule"] != "poly":
            c["lr"]["power"] = None
        if c["lr"]["schedule"] == "constant":
            c["lr"]["end"] = c["lr"]["start"]
        if c["optimizer"]["type"] != "SGD":
            c["optimizer"]["momentum"] = None
    if config["lr"]["schedule"] != "constant" and config["lr"]["end"] > config["lr"]["start"]:
        raise SpecError(f"{spec.where('control_grid')}: control_grid: lr.end {config['lr']['end']:g} is above "
                        f"lr.start {config['lr']['start']:g} in a control arm; expected end <= start")
    config["config_id"] = config_hash(view)
    config["control_id"] = control["config_id"]
    flat = {f"{g}.{k}": v for g in ("lr", "optimizer") for k, v in config[g].items()}
    params = {k: control["params"].get(k) for k in shown}
    params.update({k: flat.get(k) for k in variant_keys})
    config["params"] = params
    return config, params


def _pair_references(rewards: list[tuple[dict[str, Any], dict[str, Any]]],
                     controls: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One no-op reference per distinct REFERENCE_KEYS; sets every config's reference_id.

    Its id is hashed from the reward configuration's view (paths as written), like every
    other id, so it is the same wherever the study folder is.
    """
    noop = {"arm": "noop", "estimator": None, "samples": None,
            "baseline": {"kind": None, "coef": None, "decay": None}, "normalize_advantage": None,
            "class_weights": None, "aux_head": "mle", "lr": default("lr"), "optimizer": default("optimizer")}
    references: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for config, view in rewards:
        key = json.dumps({k: config[k] for k in REFERENCE_KEYS}, sort_keys=True)
        if key not in references:
            rid = config_hash({**view, **noop})
            params = {k: v for k, v in (config.get("params") or {}).items()
                      if k.split(".")[0] in ("steps", "checkpoint", "batch_size", "pretrain")}
            references[key] = ({**config, **noop, "config_id": rid, "control_id": None, "reference_id": rid,
                                "params": params}, params)
    for config in [c for c, _ in rewards] + controls:
        config["reference_id"] = references[json.dumps({k: config[k] for k in REFERENCE_KEYS},
                                                       sort_keys=True)][0]["config_id"]
    return list(references.values())


def _per_seed(spec: Spec, config: dict[str, Any], params: dict[str, Any]) -> list[TrialPlan]:
    """One TrialPlan per seed of the study, each with a private copy of the config."""
    plans = []
    for seed in spec.seeds:
        c = json.loads(json.dumps(config))
        c["seed"] = seed
        plans.append(TrialPlan(config_id=c["config_id"], arm=c["arm"], seed=seed,
                               params=dict(params), config=c))
    return plans
