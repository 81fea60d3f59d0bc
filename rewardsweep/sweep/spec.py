"""The search-space spec: read a study's YAML, validate it, expand it into trials.

    spec = load_spec("search_spaces/baseline.yaml")     # raises SpecError, one line
    trials = expand(spec)                                # list[TrialPlan]

Everything is checked before anything starts: every error is one line that names the
file, the line, the dotted key and what was expected. This module is pure Python
(PyYAML, numpy for sampling): it never imports torch, MMSeg or Ray.

The YAML is read as YAML 1.2 would for booleans and floats: ``on``/``off``/``yes``/
``no`` stay strings (so ``aux_head: off`` means "off", not False) and ``1e-4`` is a
float (PyYAML alone reads it as a string). Duplicate keys are an error.

See ``docs/search_spaces.md`` for the user's view of every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import yaml

from rewardsweep.errors import ConfigError, SpecError

__all__ = [
    "Spec",
    "SampleSpec",
    "TrialPlan",
    "Expansion",
    "load_spec",
    "expand",
    "expand_study",
    "config_hash",
    "PARAM_KEYS",
    "DEFAULTS",
]

# --------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------


class LineDict(dict):
    """A mapping read from YAML that remembers where its keys were (1-based lines)."""

    line: int = 0
    key_lines: dict


class LineList(list):
    """A sequence read from YAML that remembers where its items were (1-based lines)."""

    line: int = 0
    item_lines: list


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and floats, line numbers, no duplicate keys."""


_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_map(loader: _Loader, node: yaml.MappingNode):
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor): own keys override merged ones
    merged: set = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark) from None
        line = key_node.start_mark.line + 1
        if key in data.key_lines and key not in merged:
            raise _DuplicateKey(key, line, data.key_lines[key])
        if id(key_node) in own:
            merged.discard(key)
        else:
            merged.add(key)
        data.key_lines[key] = line
        data[key] = loader.construct_object(value_node, deep=True)


def _construct_seq(loader: _Loader, node: yaml.SequenceNode):
    data = LineList()
    data.line = node.start_mark.line + 1
    data.item_lines = [child.start_mark.line + 1 for child in node.value]
    yield data
    data.extend(loader.construct_object(child, deep=True) for child in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _read_yaml(path: Path, source: str) -> tuple[Any, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such search-space file") from None
    except IsADirectoryError:
        raise SpecError(f"{source}: is a folder; expected a search-space .yaml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{source}: cannot read the search-space file ({exc})") from None
    try:
        return yaml.load(text, Loader=_Loader), text
    except _DuplicateKey as exc:
        raise SpecError(f"{source}:{exc.line}: {exc.key}: duplicate key (first given at line "
                        f"{exc.first}); give each key once") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        context = exc.context
        if context and exc.context_mark is not None and mark is not None \
                and exc.context_mark.line != mark.line:
            context += f" (started at line {exc.context_mark.line + 1})"
        what = " ".join(part for part in (context, exc.problem) if part)
        what = " ".join(what.split())
        raise SpecError(f"{where}: YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: YAML syntax error: {' '.join(str(exc).split())}") from None


def _walk_lines(node: Any, prefix: str, out: dict[str, int]) -> None:
    """Record the line of every dotted path in the parsed tree (keys as written)."""
    if isinstance(node, LineDict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.setdefault(path, node.key_lines.get(key, node.line))
            _walk_lines(value, path, out)
    elif isinstance(node, LineList):
        for i, (value, line) in enumerate(zip(node, node.item_lines)):
            path = f"{prefix}[{i}]"
            out.setdefault(path, line)
            _walk_lines(value, path, out)


# --------------------------------------------------------------------------------------
# Parameter keys (the trial-config keys a study may vary)
# --------------------------------------------------------------------------------------

ESTIMATORS = ("reinforce", "reward_weighted_ce")
BASELINE_KINDS = ("none", "batch_loo", "sample_loo", "greedy", "ema")
SCHEDULES = ("poly", "cosine", "linear", "exponential", "constant")
OPTIMIZERS = ("SGD", "Adam", "AdamW")
AUX_HEADS = ("off", "mle", "reward")
WANDB_MODES = ("offline", "online", "disabled")
CONTROLS = ("mle", "none")


class _Bad(ValueError):
    """A value that does not fit; the message says what was expected."""


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)


def _enum(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return value
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _Bad(f"{_show(value)} is not allowed; expected one of {', '.join(choices)}{hint}")

    return check


def _int(lo: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and value >= lo:
                return int(value)
            raise _Bad(f"{_show(value)} is not an integer; expected an integer >= {lo}")
        if value < lo:
            raise _Bad(f"{value} is too small; expected an integer >= {lo}")
        return int(value)

    return check


def _number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False) -> Callable[[Any], float]:
    def describe() -> str:
        parts = []
        if lo is not None:
            parts.append(f"{'>' if lo_open else '>='} {lo:g}")
        if hi is not None:
            parts.append(f"{'<' if hi_open else '<='} {hi:g}")
        return "a number" + (" " + " and ".join(parts) if parts else "")

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(f"{_show(value)} is not a number; expected {describe()}")
        value = float(value)
        if not math.isfinite(value):
            raise _Bad(f"{value} is not finite; expected {describe()}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise _Bad(f"{value:g} is out of range; expected {describe()}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise _Bad(f"{value:g} is out of range; expected {describe()}")
        return value

    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Bad(f"{_show(value)} is not a boolean; expected true or false")


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        return None if value is None else check(value)

    return wrapped


@dataclasses.dataclass(frozen=True)
class _Param:
    check: Callable[[Any], Any]
    help: str
    kind: str = "value"  # "value" | "int" (sampled with choice only) | "path" (resolved)


def _counts(value: Any) -> Any:
    """class_weights.counts: a list of pixel counts, or a .json path (existence checked later)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(
            not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
            for v in value):
        return [int(v) if float(v).is_integer() else float(v) for v in value]
    raise _Bad(f"{_show(value)} is not class counts; expected a non-empty list of per-class "
               f"pixel counts (numbers >= 0) or a .json file written by `rewardsweep class-weights`")


def _checkpoint(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise _Bad(f"{_show(value)} is not a checkpoint; expected auto or a path to a .pth file")


PARAM_KEYS: dict[str, _Param] = {
    "estimator": _Param(_enum(ESTIMATORS), "how the reward becomes a gradient"),
    "samples": _Param(_int(1), "k labellings sampled per image (reinforce)", "int"),
    "baseline.kind": _Param(_enum(BASELINE_KINDS), "variance-reduction baseline (reinforce)"),
    "baseline.coef": _Param(_number(0.0), "beta: batch_loo coefficient, or reward_weighted_ce's"),
    "baseline.decay": _Param(_number(0.0, 1.0, lo_open=True, hi_open=True), "ema baseline decay"),
    "normalize_advantage": _Param(_bool, "divide the advantage by its batch std"),
    "lr.start": _Param(_number(0.0, lo_open=True), "learning rate at step 0"),
    "lr.end": _Param(_number(0.0), "learning rate at the last step"),
    "lr.schedule": _Param(_enum(SCHEDULES), "shape of the start -> end decay"),
    "lr.power": _Param(_number(0.0, lo_open=True), "poly schedule power"),
    "optimizer.type": _Param(_enum(OPTIMIZERS), "torch optimizer"),
    "optimizer.momentum": _Param(_number(0.0, 1.0, hi_open=True), "SGD momentum"),
    "optimizer.weight_decay": _Param(_number(0.0), "weight decay"),
    "class_weights": _Param(lambda v: v, "class weights: null/false (off) or {counts, smooth}"),
    "class_weights.counts": _Param(_counts, "per-class pixel counts or a .json file", "path"),
    "class_weights.smooth": _Param(_number(0.0), "class-weight smoothing s"),
    "aux_head": _Param(_enum(AUX_HEADS), "auxiliary head: off, keep its MLE loss, or reward"),
    "steps": _Param(_int(1), "reward-tuning steps", "int"),
    "checkpoint": _Param(_checkpoint, "start checkpoint: auto or a path", "path"),
    "batch_size": _Param(_int(1), "images per step", "int"),
    "pretrain.iters": _Param(_optional(_int(1)), "MLE pretraining iterations for checkpoint auto "
                             "(null: the preset's default)", "int"),
}
GROUPS = ("baseline", "lr", "optimizer", "class_weights", "pretrain")
# Keys that uniform/loguniform may draw (real-valued).
_REAL_KEYS = ("baseline.coef", "baseline.decay", "lr.start", "lr.end", "lr.power",
              "optimizer.momentum", "optimizer.weight_decay", "class_weights.smooth")

DEFAULTS: dict[str, Any] = {
    "estimator": "reinforce",
    "samples": 1,
    "baseline.kind": "none",
    "baseline.coef": 1.0,
    "baseline.decay": 0.9,
    "normalize_advantage": False,
    "lr.start": 1e-4,
    "lr.end": 1e-6,
    "lr.schedule": "poly",
    "lr.power": 0.9,
    "optimizer.type": "SGD",
    "optimizer.momentum": 0.9,
    "optimizer.weight_decay": 0.0005,
    "class_weights": False,          # internal on/off switch; the config holds None when off
    "class_weights.counts": None,
    "class_weights.smooth": 0.05,
    "aux_head": "mle",
    "checkpoint": "auto",
    "batch_size": 8,
    "pretrain.iters": None,
}

# Top-level keys of a spec and whether they are required.
TOP_KEYS: dict[str, bool] = {
    "name": True, "description": False, "model": True, "data_root": False, "checkpoint": False,
    "pretrain": False, "seeds": True, "steps": False, "eval_every": True, "batch_size": False,
    "control": False, "fixed": False, "grid": False, "sample": False, "resources": False,
    "max_concurrent": False, "storage": False, "wandb": False, "retries": False,
}

# Fields of a trial config that do not define the configuration (not hashed).
RUNTIME_FIELDS = ("seed", "study_dir", "start", "threads", "config_id", "control_id", "debug",
                  "params")
# What one control (cross-entropy) config is shared by.
CONTROL_KEYS = ("model", "data_root", "checkpoint", "pretrain", "steps", "eval_every",
                "batch_size", "lr", "optimizer")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


# --------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    num_samples: int
    seed: int
    params: dict[str, tuple[str, Any]]  # dotted key -> ("choice", [values]) | ("uniform", (lo, hi)) | ...


@dataclasses.dataclass(frozen=True)
class Spec:
    """A validated search space. Build it with :func:`load_spec`."""

    source: str                   # the path as given (for messages)
    path: Path                    # absolute path of the YAML file
    text: str                     # the YAML as written (copy it into the study folder)
    name: str
    description: str | None
    model: str                    # preset name, or absolute path of an MMSeg config .py
    model_ref: str                # as written in the spec (hashed)
    data_root: str | None         # absolute (or None: the preset's default)
    data_root_ref: str | None
    seeds: tuple[int, ...]
    eval_every: int
    control: str                  # "mle" | "none"
    fixed: dict[str, Any]         # flat dotted key -> value (includes top-level steps etc.)
    grid: dict[str, list]         # key as written -> one flat {leaf: value} per listed value
                                  # (internally, "class_weights" is an on/off switch)
    sample: SampleSpec | None
    resources: dict[str, float]   # {"cpu": float, "gpu": float}
    max_concurrent: int | None
    storage: str                  # absolute path or URI
    study_dir: str                # <storage>/<name>
    wandb: dict[str, Any]         # {"project", "entity", "mode", "tags"}
    retries: int                  # Ray FailureConfig(max_failures=...)
    lines: dict[str, int]         # dotted path in the YAML -> line
    origins: dict[str, str]       # fixed key -> where it was given (e.g. "fixed.lr.start", "steps")

    @property
    def threads(self) -> int:
        return max(1, int(self.resources["cpu"]))

    def where(self, key: str) -> str:
        """``file:line`` for a dotted path of the YAML (``file`` if unknown)."""
        return _where(self.source, self.lines, key)


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

    def count(self, arm: str | None = None) -> int:
        return sum(1 for t in self.trials if arm is None or t.arm == arm)


# --------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------


def _line_of(lines: dict[str, int], key: str) -> int | None:
    """The line of a dotted YAML path, or of the nearest enclosing key that has one."""
    line = lines.get(key)
    probe = key
    while line is None and ("." in probe or "[" in probe):
        probe = re.sub(r"(\[\d+\]|\.[^.\[]*)$", "", probe)
        line = lines.get(probe)
    return line


def _where(source: str, lines: dict[str, int], key: str) -> str:
    line = _line_of(lines, key)
    return f"{source}:{line}" if line else source


class _Ctx:
    """Where we are: the file, its line table, and how to say what went wrong."""

    def __init__(self, source: str, folder: Path, lines: dict[str, int]) -> None:
        self.source, self.folder, self.lines = source, folder, lines

    def fail(self, key: str, message: str) -> SpecError:
        where = _where(self.source, self.lines, key)
        return SpecError(f"{where}: {key}: {' '.join(str(message).split())}")

    def resolve(self, ref: str) -> Path:
        path = Path(os.path.expanduser(ref))
        return path if path.is_absolute() else (self.folder / path)


def _suggest(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expand_env(ctx: _Ctx, key: str, value: str) -> str:
    def sub(match: re.Match) -> str:
        var = match.group(1) or match.group(2)
        if var not in os.environ:
            raise ctx.fail(key, f"environment variable {var} is not set (used in {value!r})")
        return os.environ[var]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)


def _is_uri(value: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


def _check_param(ctx: _Ctx, key: str, at: str, value: Any) -> Any:
    """Validate one leaf value of parameter ``key`` given at YAML path ``at``."""
    try:
        value = PARAM_KEYS[key].check(value)
    except _Bad as exc:
        raise ctx.fail(at, str(exc)) from None
    if key == "checkpoint" and value != "auto":
        path = ctx.resolve(value)
        if not path.is_file():
            raise ctx.fail(at, f"checkpoint file {value!r} not found (looked for {path}); expected "
                               f"auto or an existing checkpoint file")
    if key == "class_weights.counts" and isinstance(value, str):
        path = ctx.resolve(value)
        if not path.is_file():
            raise ctx.fail(at, f"class counts file {value!r} not found (looked for {path}); expected "
                               f"a .json written by `rewardsweep class-weights` or a list of counts")
    return value


def _unknown_param(ctx: _Ctx, at: str, key: str) -> SpecError:
    candidates = list(PARAM_KEYS) + list(GROUPS)
    return ctx.fail(at, f"unknown parameter {key!r}; expected one of the trial-config keys "
                        f"(see docs/search_spaces.md){_suggest(key, candidates)}")


def _flatten_value(ctx: _Ctx, key: str, at: str, value: Any) -> dict[str, Any]:
    """A parameter assignment ``key: value`` -> {leaf: value}. Groups take mappings."""
    if key in GROUPS:
        if key == "class_weights" and (value is None or value is False):
            return {"class_weights": False}
        if not isinstance(value, Mapping):
            if key == "class_weights":
                raise ctx.fail(at, f"{_show(value)} is not allowed; expected null or false (off) "
                                   f"or a mapping {{counts: ..., smooth: ...}}")
            raise ctx.fail(at, f"{_show(value)} is not a mapping; expected a mapping of "
                               f"{', '.join(k.split('.', 1)[1] for k in PARAM_KEYS if k.startswith(key + '.'))}")
        out: dict[str, Any] = {"class_weights": True} if key == "class_weights" else {}
        for sub, subvalue in value.items():
            leaf = f"{key}.{sub}"
            sub_at = f"{at}.{sub}"
            if leaf not in PARAM_KEYS:
                raise _unknown_param(ctx, sub_at, leaf)
            out[leaf] = _check_param(ctx, leaf, sub_at, subvalue)
        return out
    if key not in PARAM_KEYS:
        raise _unknown_param(ctx, at, key)
    out = {key: _check_param(ctx, key, at, value)}
    if key == "class_weights.counts" and out[key] is not None:
        out["class_weights"] = True
    return out


def _parse_fixed(ctx: _Ctx, fixed: Any) -> tuple[dict[str, Any], dict[str, str]]:
    if fixed is None:
        return {}, {}
    if not isinstance(fixed, Mapping):
        raise ctx.fail("fixed", f"{_show(fixed)} is not a mapping; expected a mapping of "
                                f"trial-config keys to values")
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, value in fixed.items():
        key = str(key)
        at = f"fixed.{key}"
        for leaf, leaf_value in _flatten_value(ctx, key, at, value).items():
            if leaf in values:
                if leaf == "class_weights" and values[leaf] == leaf_value:
                    continue
                raise ctx.fail(at, f"{leaf} is given twice in fixed (also at {origins[leaf]})")
            values[leaf] = leaf_value
            origins[leaf] = at if leaf == key or leaf == "class_weights" else f"{at}.{leaf.split('.', 1)[1]}"
    return values, origins


def _parse_grid(ctx: _Ctx, grid: Any) -> dict[str, list[dict[str, Any]]]:
    """grid -> {key as written: [flattened assignment per value]}."""
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise ctx.fail("grid", f"{_show(grid)} is not a mapping; expected dotted keys mapped to "
                               f"lists of values")
    out: dict[str, list[dict[str, Any]]] = {}
    for key, values in grid.items():
        key = str(key)
        at = f"grid.{key}"
        if key not in PARAM_KEYS and key not in GROUPS:
            raise _unknown_param(ctx, at, key)
        if not isinstance(values, list):
            raise ctx.fail(at, f"{_show(values)} is not a list; expected a non-empty list of values "
                               f"(a single value belongs under fixed:)")
        if not values:
            raise ctx.fail(at, "empty list; expected at least one value")
        assignments = []
        for i, value in enumerate(values):
            assignment = _flatten_value(ctx, key, f"{at}[{i}]", value)
            if assignment in assignments:
                raise ctx.fail(f"{at}[{i}]", f"value {_show(value)} is listed twice")
            assignments.append(assignment)
        out[key] = assignments
    return out


def _parse_sample(ctx: _Ctx, sample: Any) -> SampleSpec | None:
    if sample is None:
        return None
    if not isinstance(sample, Mapping):
        raise ctx.fail("sample", f"{_show(sample)} is not a mapping; expected {{num_samples: N, "
                                 f"seed: S, params: {{key: {{choice|uniform|loguniform: ...}}}}}}")
    allowed = ("num_samples", "seed", "params")
    for key in sample:
        if key not in allowed:
            raise ctx.fail(f"sample.{key}", f"unknown key {key!r}; expected one of "
                                            f"{', '.join(allowed)}{_suggest(str(key), list(allowed))}")
    for key in ("num_samples", "params"):
        if key not in sample:
            raise ctx.fail("sample", f"missing key sample.{key}")
    try:
        num = _int(1)(sample["num_samples"])
    except _Bad as exc:
        raise ctx.fail("sample.num_samples", str(exc)) from None
    try:
        seed = _int(0)(sample.get("seed", 0))
    except _Bad as exc:
        raise ctx.fail("sample.seed", str(exc)) from None
    params = sample["params"]
    if not isinstance(params, Mapping) or not params:
        raise ctx.fail("sample.params", f"{_show(params)} is not allowed; expected a non-empty mapping "
                                        f"of dotted keys to {{choice: [...]}}, {{uniform: [lo, hi]}} "
                                        f"or {{loguniform: [lo, hi]}}")
    out: dict[str, tuple[str, Any]] = {}
    for key, dist in params.items():
        key = str(key)
        at = f"sample.params.{key}"
        if key not in PARAM_KEYS and key not in GROUPS:
            raise _unknown_param(ctx, at, key)
        kinds = ("choice", "uniform", "loguniform")
        if not isinstance(dist, Mapping) or len(dist) != 1:
            raise ctx.fail(at, f"{_show(dist)} is not a distribution; expected exactly one of "
                               f"{{choice: [...]}}, {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}")
        (kind, arg), = dist.items()
        if kind not in kinds:
            raise ctx.fail(f"{at}.{kind}", f"unknown distribution {kind!r}; expected one of "
                                           f"{', '.join(kinds)}{_suggest(str(kind), list(kinds))}")
        dat = f"{at}.{kind}"
        if kind == "choice":
            if not isinstance(arg, list) or not arg:
                raise ctx.fail(dat, f"{_show(arg)} is not allowed; expected a non-empty list of values")
            choices = []
            for i, value in enumerate(arg):
                assignment = _flatten_value(ctx, key, f"{dat}[{i}]", value)
                if assignment in choices:
                    raise ctx.fail(f"{dat}[{i}]", f"value {_show(value)} is listed twice")
                choices.append(assignment)
            out[key] = ("choice", choices)
            continue
        if key not in _REAL_KEYS:
            takes = "integers" if key in PARAM_KEYS and PARAM_KEYS[key].kind == "int" else "fixed values"
            raise ctx.fail(dat, f"{kind} draws real numbers but {key} takes {takes}; use {{choice: [...]}}")
        if (not isinstance(arg, list) or len(arg) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in arg)):
            raise ctx.fail(dat, f"{_show(arg)} is not allowed; expected [lo, hi], two numbers")
        lo, hi = float(arg[0]), float(arg[1])
        if not lo < hi:
            raise ctx.fail(dat, f"[{lo:g}, {hi:g}] is empty; expected lo < hi")
        if kind == "loguniform" and lo <= 0:
            raise ctx.fail(dat, f"[{lo:g}, {hi:g}] starts at or below 0; loguniform needs 0 < lo < hi")
        for bound in (lo, hi):
            _check_param(ctx, key, dat, bound)
        out[key] = (kind, (lo, hi))
    return SampleSpec(num_samples=num, seed=seed, params=out)


def _sig_round(x: float, digits: int = 4) -> float:
    """Sampled reals are rounded to 4 significant digits: readable ids, exact JSON."""
    return float(f"{x:.{digits}g}")


def _draw_samples(sample: SampleSpec | None) -> list[dict[str, tuple[dict[str, Any], str]]]:
    """Deterministic draws: numpy Generator(seed), keys in sorted order."""
    if sample is None:
        return [{}]
    import numpy as np

    rng = np.random.default_rng(sample.seed)
    draws = []
    for _ in range(sample.num_samples):
        draw: dict[str, tuple[dict[str, Any], str]] = {}
        for key in sorted(sample.params):
            kind, arg = sample.params[key]
            at = f"sample.params.{key}.{kind}"
            if kind == "choice":
                i = int(rng.integers(len(arg)))
                draw[key] = (arg[i], f"{at}[{i}]")
            elif kind == "uniform":
                draw[key] = ({key: _sig_round(float(rng.uniform(arg[0], arg[1])))}, at)
            else:
                lo, hi = math.log(arg[0]), math.log(arg[1])
                draw[key] = ({key: _sig_round(math.exp(float(rng.uniform(lo, hi))))}, at)
        draws.append(draw)
    return draws


def _check_overlaps(ctx: _Ctx, fixed: dict[str, Any], origins: dict[str, str],
                    grid: dict[str, list[dict[str, Any]]], sample: SampleSpec | None) -> None:
    """A key given in two places, one of which would silently never be used, is an error."""
    varied: list[tuple[str, list[dict[str, Any]]]] = [
        (f"grid.{key}", values) for key, values in grid.items()]
    if sample is not None:
        for key, (kind, arg) in sample.params.items():
            varied.append((f"sample.params.{key}", arg if kind == "choice" else [{key: None}]))
    for leaf in fixed:
        if leaf == "class_weights":  # the on/off switch: null in a grid legitimately overrides it
            continue
        for at, values in varied:
            if all(leaf in v for v in values):
                line = _line_of(ctx.lines, origins[leaf])
                fixed_at = f"{origins[leaf]}, line {line}" if line else origins[leaf]
                raise ctx.fail(at, f"{leaf} is both fixed ({fixed_at}) and varied here; give it in "
                                   f"one place only")
    for (at1, v1), (at2, v2) in itertools.combinations(varied, 2):
        leaves1 = set().union(*(v.keys() for v in v1)) - {"class_weights"}
        leaves2 = set().union(*(v.keys() for v in v2)) - {"class_weights"}
        if at1.rsplit(".", 1)[-1] == at2.rsplit(".", 1)[-1] or leaves1 & leaves2:
            common = ", ".join(sorted(leaves1 & leaves2)) or at2.rsplit(".", 1)[-1]
            line = _line_of(ctx.lines, at1)
            raise ctx.fail(at2, f"{common} is also varied at {at1}{f', line {line}' if line else ''}; "
                                f"vary each key in one place only")


def load_spec(path: str | os.PathLike, *, storage: str | None = None, wandb_mode: str | None = None,
              max_concurrent: int | None = None) -> Spec:
    """Read and validate a search space; raise :class:`SpecError` (one line) if it is wrong.

    ``storage``, ``wandb_mode`` and ``max_concurrent`` override the spec (the launch
    command's ``--storage``, ``--wandb`` and ``--max-concurrent``). Every trial the spec
    expands to is validated too (including ``RewardSettings.from_config``), so a spec that
    loads is a spec whose trials can all start.
    """
    source = os.fspath(path)
    fpath = Path(source).expanduser()
    raw, text = _read_yaml(fpath, source)
    fpath = fpath.resolve()
    lines: dict[str, int] = {}
    _walk_lines(raw, "", lines)
    ctx = _Ctx(source, fpath.parent, lines)
    if raw is None:
        raise SpecError(f"{source}: empty file; expected a search space (see search_spaces/baseline.yaml)")
    if not isinstance(raw, Mapping):
        kind = "a list" if isinstance(raw, list) else f"a single value ({_show(raw)})"
        raise SpecError(f"{source}:1: the top level is {kind}; expected a mapping of keys "
                        f"(name, model, seeds, ...)")

    for key in raw:
        if key not in TOP_KEYS:
            skey = str(key)
            if skey in PARAM_KEYS or skey in GROUPS:
                hint = f" (trial parameters go under fixed:, grid: or sample:, e.g. fixed: {{{skey}: ...}})"
            else:
                hint = _suggest(skey, list(TOP_KEYS))
                if not hint:
                    close = difflib.get_close_matches(skey, list(PARAM_KEYS) + list(GROUPS), n=1, cutoff=0.6)
                    hint = f" (did you mean fixed: {{{close[0]}: ...}}?)" if close else ""
            raise ctx.fail(skey, f"unknown key {skey!r}; expected one of "
                                 f"{', '.join(TOP_KEYS)}{hint}")
    for key, required in TOP_KEYS.items():
        if required and key not in raw:
            raise SpecError(f"{source}: {key}: missing required key")

    # name, description
    name = raw["name"]
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not _NAME_RE.match(name) or set(name) == {"."}:
        raise ctx.fail("name", f"{_show(name)} is not a study name; expected letters, digits, "
                               f"'_', '.' or '-' (it names the folder <storage>/<name>)")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise ctx.fail("description", f"{_show(description)} is not text; expected a string")

    # model
    model_ref = raw["model"]
    if not isinstance(model_ref, str) or not model_ref:
        raise ctx.fail("model", f"{_show(model_ref)} is not a model; expected a preset name or a "
                                f"path to an MMSeg config .py")
    from rewardsweep.runners import presets as _presets

    # real-dataset presets register themselves when their module is imported; preset_names()
    # alone may not have seen them yet (the presets module does the same in resolve_setting)
    getattr(_presets, "_load_extra_presets", lambda: None)()
    presets = tuple(_presets.preset_names())
    if model_ref in presets:
        model = model_ref
    elif model_ref.endswith(".py") or "/" in model_ref or os.sep in model_ref:
        mpath = ctx.resolve(model_ref)
        if not mpath.is_file():
            raise ctx.fail("model", f"MMSeg config {model_ref!r} not found (looked for {mpath}); "
                                    f"expected a preset ({', '.join(presets)}) or an existing "
                                    f"config .py")
        if mpath.suffix != ".py":
            raise ctx.fail("model", f"{model_ref!r} is not a .py file; expected an MMSeg config .py")
        model = str(mpath.resolve())
    else:
        close = difflib.get_close_matches(model_ref, presets, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ctx.fail("model", f"unknown preset {model_ref!r}; expected one of {', '.join(presets)} "
                                f"or a path to an MMSeg config .py{hint}")

    # data_root: not checked for existence (it may live on the workers only)
    data_root_ref = raw.get("data_root")
    data_root = None
    if data_root_ref is not None:
        if not isinstance(data_root_ref, str) or not data_root_ref:
            raise ctx.fail("data_root", f"{_show(data_root_ref)} is not a path; expected a folder "
                                        f"(or leave it out for the preset's default)")
        data_root = str(ctx.resolve(_expand_env(ctx, "data_root", data_root_ref)))

    # seeds
    seeds_raw = raw["seeds"]
    if isinstance(seeds_raw, bool) or not isinstance(seeds_raw, (int, list)):
        raise ctx.fail("seeds", f"{_show(seeds_raw)} is not allowed; expected a count N >= 1 "
                                f"(seeds 0..N-1) or a list of distinct integers >= 0")
    if isinstance(seeds_raw, int):
        if seeds_raw < 1:
            raise ctx.fail("seeds", f"{seeds_raw} is not a count; expected N >= 1 (seeds 0..N-1) or "
                                    f"a list of distinct integers >= 0")
        seeds = tuple(range(seeds_raw))
    else:
        if not seeds_raw:
            raise ctx.fail("seeds", "empty list; expected at least one seed")
        for i, s in enumerate(seeds_raw):
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ctx.fail(f"seeds[{i}]", f"{_show(s)} is not a seed; expected an integer >= 0")
            if s in seeds_raw[:i]:
                raise ctx.fail(f"seeds[{i}]", f"seed {s} is listed twice; expected distinct seeds")
        seeds = tuple(int(s) for s in seeds_raw)

    # fixed / grid / sample, and top-level parameters
    fixed, origins = _parse_fixed(ctx, raw.get("fixed"))
    for key in ("steps", "checkpoint", "batch_size"):
        if key in raw:
            value = _check_param(ctx, key, key, raw[key])
            if key in fixed:
                raise ctx.fail(key, f"given both at top level and at {origins[key]} (line "
                                    f"{lines.get(origins[key], '?')}); give it once")
            fixed[key], origins[key] = value, key
    if "pretrain" in raw:
        pre = raw["pretrain"]
        if not isinstance(pre, Mapping):
            raise ctx.fail("pretrain", f"{_show(pre)} is not a mapping; expected {{iters: N}}")
        for k in pre:
            if k != "iters":
                raise ctx.fail(f"pretrain.{k}", f"unknown key {k!r}; expected iters{_suggest(str(k), ['iters'])}")
        if "iters" in pre:
            if "pretrain.iters" in fixed:
                raise ctx.fail("pretrain.iters", f"given both here and at {origins['pretrain.iters']}; "
                                                 f"give it once")
            fixed["pretrain.iters"] = _check_param(ctx, "pretrain.iters", "pretrain.iters", pre["iters"])
            origins["pretrain.iters"] = "pretrain.iters"
    grid = _parse_grid(ctx, raw.get("grid"))
    sample = _parse_sample(ctx, raw.get("sample"))
    _check_overlaps(ctx, fixed, origins, grid, sample)
    varied_leaves = set(itertools.chain.from_iterable(
        a.keys() for values in grid.values() for a in values))
    if sample is not None:
        for key, (kind, arg) in sample.params.items():
            varied_leaves |= set(itertools.chain.from_iterable(a.keys() for a in arg)) if kind == "choice" else {key}
    if fixed.get("pretrain.iters") is not None and fixed.get("checkpoint", "auto") != "auto" \
            and "checkpoint" not in varied_leaves:
        raise ctx.fail(origins["pretrain.iters"], "pretrain is only used with checkpoint: auto (the "
                                                  "checkpoint is a file here); remove it")
    if "steps" not in fixed and "steps" not in varied_leaves:
        raise SpecError(f"{source}: steps: missing required key (reward-tuning steps, an integer "
                        f">= 1; or vary it under grid:)")

    # eval_every
    try:
        eval_every = _int(1)(raw["eval_every"])
    except _Bad as exc:
        raise ctx.fail("eval_every", str(exc)) from None

    # control
    control = raw.get("control", "mle")
    if control is None or control is False:
        control = "none"
    try:
        control = _enum(CONTROLS)(control)
    except _Bad as exc:
        raise ctx.fail("control", str(exc)) from None

    # resources
    res_raw = raw.get("resources") or {}
    if not isinstance(res_raw, Mapping):
        raise ctx.fail("resources", f"{_show(res_raw)} is not a mapping; expected {{cpu: N, gpu: G}}")
    resources = {"cpu": 1.0, "gpu": 0.0}
    for key, value in res_raw.items():
        if key not in resources:
            raise ctx.fail(f"resources.{key}", f"unknown key {key!r}; expected cpu or gpu"
                                               f"{_suggest(str(key), ['cpu', 'gpu'])}")
        try:
            resources[key] = (_number(0.0, lo_open=True) if key == "cpu" else _number(0.0))(value)
        except _Bad as exc:
            raise ctx.fail(f"resources.{key}", f"{exc} (CPUs per trial)" if key == "cpu"
                           else f"{exc} (GPUs per trial, fractions allowed)") from None

    # max_concurrent
    mc = max_concurrent if max_concurrent is not None else raw.get("max_concurrent")
    if mc is not None:
        try:
            mc = _int(1)(mc)
        except _Bad as exc:
            if max_concurrent is not None:
                raise SpecError(f"--max-concurrent: {exc}") from None
            raise ctx.fail("max_concurrent", str(exc)) from None

    # storage
    storage_ref = storage if storage is not None else raw.get("storage", "runs")
    if not isinstance(storage_ref, str) or not storage_ref:
        if storage is not None:
            raise SpecError("--storage: expected a folder or a URI")
        raise ctx.fail("storage", f"{_show(storage_ref)} is not a path; expected a folder or a URI "
                                  f"Ray accepts (default runs)")
    storage_ref = storage_ref if storage is not None else _expand_env(ctx, "storage", storage_ref)
    if _is_uri(storage_ref):
        storage_abs = storage_ref.rstrip("/")
        study_dir = f"{storage_abs}/{name}"
    else:
        storage_abs = str(Path(os.path.expanduser(storage_ref)).resolve())
        study_dir = str(Path(storage_abs) / name)

    # wandb
    wb_raw = raw.get("wandb") or {}
    if not isinstance(wb_raw, Mapping):
        raise ctx.fail("wandb", f"{_show(wb_raw)} is not a mapping; expected {{project, entity, mode, tags}}")
    wandb = {"project": "rewardsweep", "entity": None, "mode": "offline", "tags": []}
    for key, value in wb_raw.items():
        at = f"wandb.{key}"
        if key not in wandb:
            raise ctx.fail(at, f"unknown key {key!r}; expected one of {', '.join(wandb)}"
                               f"{_suggest(str(key), list(wandb))}")
        if key == "mode":
            try:
                value = _enum(WANDB_MODES)(value)
            except _Bad as exc:
                raise ctx.fail(at, str(exc)) from None
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise ctx.fail(at, f"{_show(value)} is not allowed; expected a list of strings")
            value = list(value)
        elif key == "project" and (not isinstance(value, str) or not value):
            raise ctx.fail(at, f"{_show(value)} is not a project name; expected a string")
        elif key == "entity" and value is not None and (not isinstance(value, str) or not value):
            raise ctx.fail(at, f"{_show(value)} is not an entity; expected a string or null")
        wandb[key] = value
    if wandb_mode is not None:
        try:
            wandb["mode"] = _enum(WANDB_MODES)(wandb_mode)
        except _Bad as exc:
            raise SpecError(f"--wandb: {exc}") from None

    # retries
    try:
        retries = _int(0)(raw.get("retries", 1))
    except _Bad as exc:
        raise ctx.fail("retries", f"{exc} (times Ray retries a failed trial)") from None

    spec = Spec(
        source=source, path=fpath, text=text, name=name, description=description,
        model=model, model_ref=model_ref, data_root=data_root, data_root_ref=data_root_ref,
        seeds=seeds, eval_every=eval_every, control=control, fixed=fixed,
        grid={k: v for k, v in grid.items()}, sample=sample, resources=resources,
        max_concurrent=mc, storage=storage_abs, study_dir=study_dir, wandb=wandb,
        retries=retries, lines=lines, origins=origins,
    )
    expand_study(spec)  # validates every trial
    return spec


# --------------------------------------------------------------------------------------
# Expansion
# --------------------------------------------------------------------------------------


def config_hash(config: Mapping[str, Any]) -> str:
    """First 8 hex of sha256 of the canonical JSON of a config minus run-time fields."""
    view = {k: v for k, v in config.items() if k not in RUNTIME_FIELDS}
    blob = json.dumps(view, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


# Ignored top-level reward keys take these values in the config (RewardSettings requires a
# value for them); ignored keys inside baseline/lr/optimizer are None. Tables show "-".
_IGNORED_TOP_VALUE = {"samples": 1, "normalize_advantage": False}


def _canonical_common(c: dict[str, Any]) -> None:
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


def _fallback_ignored(leaves: dict[str, Any]) -> tuple[str, ...]:
    """The rules of ``RewardSettings.ignored_keys`` (used only if it cannot be imported)."""
    ignored = []
    if leaves["estimator"] == "reward_weighted_ce":
        ignored += ["samples", "normalize_advantage"]
    if leaves["baseline.kind"] != "batch_loo":
        ignored.append("baseline.coef")
    if leaves["baseline.kind"] != "ema" or leaves["estimator"] != "reinforce":
        ignored.append("baseline.decay")
    return tuple(ignored)


def _trial_error(spec: Spec, leaves_at: dict[str, str], keys: tuple[str, ...], message: str,
                 varied: dict[str, Any]) -> SpecError:
    """An error in one trial, located at the first of ``keys`` that the spec sets."""
    return SpecError(_trial_message(spec, leaves_at, keys, message, varied))


def _trial_message(spec: Spec, leaves_at: dict[str, str], keys: tuple[str, ...], message: str,
                   varied: dict[str, Any]) -> str:
    key = next((k for k in keys if leaves_at.get(k, "default") != "default"), keys[0] if keys else None)
    at = leaves_at.get(key, "default") if key else "default"
    message = " ".join(message.split())
    trial = ", ".join(f"{k}={_plain(v)}" for k, v in varied.items())
    suffix = f" (in the trial {trial})" if trial else ""
    if key is None:
        return f"{spec.source}: {message}{suffix}"
    if at == "default":
        return f"{spec.source}: {key}: {message} ({key} is the default {_plain(DEFAULTS.get(key))}){suffix}"
    named = re.sub(r"\[\d+\]$", "", at)
    shown = named if named.endswith(key) else f"{named} ({key})"
    return f"{spec.where(at)}: {shown}: {message}{suffix}"


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        return text if len(text) <= 24 else text[:21] + "..."
    return str(value)


def _build_config(spec: Spec, arm: str, leaves: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trial config without ids/seed, hash view with paths as written in the spec)."""
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


def _trial_view(config: dict[str, Any]) -> dict[str, Any]:
    """The config as ``run_trial`` hands it to RewardSettings (None inside a group = default)."""
    out = dict(config)
    for group in ("baseline", "lr", "optimizer"):
        if isinstance(out.get(group), dict):
            out[group] = {k: v for k, v in out[group].items() if v is not None}
    return out


def _reward_settings_check(spec: Spec, config: dict[str, Any], leaves: dict[str, Any],
                           leaves_at: dict[str, str], varied: dict[str, Any]) -> tuple[str, ...]:
    """Validate the reward part with the trial's own code; return the keys it ignores."""
    try:
        from rewardsweep.reward.settings import RewardSettings
    except ImportError:
        RewardSettings = None  # noqa: N806  (not in the tree: the checks below stand in)
    if RewardSettings is not None:
        try:
            settings = RewardSettings.from_config(_trial_view(config), source=spec.source,
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
    return _fallback_ignored(leaves)


def _settings_error(spec: Spec, exc: ConfigError, leaves_at: dict[str, str],
                    varied: dict[str, Any]) -> SpecError:
    """RewardSettings' one-line message, located at the spec line that set the key."""
    message = " ".join(str(exc).split())
    for prefix in (f"{spec.source}: ", f"{spec.source}:"):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    key = getattr(exc, "key", None)
    keys = (key,) if key in PARAM_KEYS else ()
    keys += tuple(k for k in sorted(PARAM_KEYS, key=len, reverse=True)
                  if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", message) and k not in keys)
    trial = ", ".join(f"{k}={_plain(v)}" for k, v in varied.items())
    suffix = f" (in the trial {trial})" if trial else ""
    if not keys:
        return SpecError(f"{spec.source}: {message}{suffix}")
    key = next((k for k in keys if leaves_at.get(k, "default") != "default"), keys[0])
    at = leaves_at.get(key, "default")
    if at == "default":
        return SpecError(f"{spec.source}: {message}{suffix}")
    named = re.sub(r"\[\d+\]$", "", at)
    if message.startswith(f"{key}: ") and named.endswith(key):
        message = message[len(key) + 2:]
    return SpecError(f"{spec.where(at)}: {named}: {message}{suffix}")


def _check_trial(spec: Spec, leaves: dict[str, Any], leaves_at: dict[str, str],
                 varied: dict[str, Any]) -> None:
    """Cross-key checks on one trial's (pre-canonical) values."""
    if leaves["steps"] is None:
        raise _trial_error(spec, leaves_at, ("steps",), "missing; expected an integer >= 1", varied)
    if spec.eval_every > leaves["steps"]:
        at = "eval_every"
        origin = leaves_at.get("steps", "steps")
        origin = "" if origin == "steps" else f" (from {origin}, {spec.where(origin)})"
        raise SpecError(f"{spec.where(at)}: eval_every: {spec.eval_every} is above steps "
                        f"{leaves['steps']}{origin}; expected eval_every <= steps")
    if leaves["lr.schedule"] != "constant" and leaves["lr.end"] > leaves["lr.start"]:
        raise _trial_error(spec, leaves_at, ("lr.end", "lr.start"),
                           f"schedule end {leaves['lr.end']:g} is above lr.start "
                           f"{leaves['lr.start']:g}; expected end <= start", varied)
    if leaves["class_weights"] and leaves["class_weights.counts"] is None:
        raise _trial_error(spec, leaves_at, ("class_weights", "class_weights.smooth"),
                           "class weights are on but class_weights.counts is not given; expected "
                           "counts: a list of per-class pixel counts or a .json file", varied)


def _control_key(config: Mapping[str, Any]) -> str:
    return json.dumps({k: config[k] for k in CONTROL_KEYS}, sort_keys=True)


def _params_for(spec: Spec, leaves: dict[str, Any], shown: list[str]) -> dict[str, Any]:
    out = {}
    for key in shown:
        value = leaves.get(key)
        if key == "class_weights":
            value = "on" if value else "off"
        out[key] = value
    return out


def expand_study(spec: Spec) -> Expansion:
    """Expand a spec into its trials, with the counts a dry run reports."""
    grid_items = list(spec.grid.items())
    grid_points = [dict(zip([k for k, _ in grid_items], combo))
                   for combo in itertools.product(*[[(a, f"grid.{k}[{i}]") for i, a in enumerate(v)]
                                                    for k, v in grid_items])]
    draws = _draw_samples(spec.sample)

    # keys to show in tables: what is fixed or varies, in the spec's order, as leaves
    shown: list[str] = []

    def show(leaf: str) -> None:
        if leaf not in shown:
            shown.append(leaf)

    for leaf in spec.fixed:
        show(leaf)
    for values in spec.grid.values():
        for a in values:
            for leaf in a:
                show(leaf)
    if spec.sample is not None:
        for key, (kind, arg) in spec.sample.params.items():
            for leaf in (itertools.chain.from_iterable(a.keys() for a in arg) if kind == "choice" else [key]):
                show(leaf)
    # class weights on/off is shown whenever one of its sub-keys is; keys in schema order
    if any(k.startswith("class_weights.") for k in shown) and "class_weights" not in shown:
        shown.append("class_weights")
    order = list(PARAM_KEYS)
    shown.sort(key=order.index)

    rewards: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []  # (config, view, params)
    seen: dict[str, int] = {}
    points = 0
    duplicates = 0
    for draw in draws:
        for point in grid_points:
            points += 1
            leaves = dict(DEFAULTS)
            leaves["steps"] = None
            leaves_at = {k: "default" for k in leaves}
            leaves.update(spec.fixed)
            leaves_at.update(spec.origins)
            varied: dict[str, Any] = {}
            for key, (assignment, at) in list(point.items()) + list(draw.items()):
                for leaf, value in assignment.items():
                    leaves[leaf] = value
                    leaves_at[leaf] = at
                    varied[leaf] = value
            _check_trial(spec, leaves, leaves_at, varied)
            canonical = dict(leaves)
            _canonical_common(canonical)
            config, _ = _build_config(spec, "reward", canonical)
            ignored = _reward_settings_check(spec, config, leaves, leaves_at, varied)
            shown_values = dict(canonical)
            for key in ignored:
                shown_values[key] = None
                canonical[key] = _IGNORED_TOP_VALUE.get(key) if key in _IGNORED_TOP_VALUE else None
            config, view = _build_config(spec, "reward", canonical)
            params = _params_for(spec, shown_values, shown)
            config["params"] = params
            cid = config_hash(view)
            if cid in seen:
                duplicates += 1
                continue
            seen[cid] = len(rewards)
            config["config_id"] = cid
            rewards.append((config, view, params))

    controls: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    if spec.control == "mle":
        control_shown = [k for k in shown if k.split(".")[0] in ("lr", "optimizer", "steps",
                                                                   "checkpoint", "batch_size", "pretrain")]
        for config, view, params in rewards:
            key = _control_key(config)
            if key not in controls:
                ccfg = dict(config)
                ccfg.update({
                    "arm": "mle", "estimator": None, "samples": None,
                    "baseline": {"kind": None, "coef": None, "decay": None},
                    "normalize_advantage": None, "class_weights": None, "aux_head": "mle",
                })
                cview = dict(view)
                cview.update({k: ccfg[k] for k in ("arm", "estimator", "samples", "baseline",
                                                   "normalize_advantage", "class_weights", "aux_head")})
                cid = config_hash(cview)
                ccfg["config_id"] = cid
                ccfg["control_id"] = cid
                cparams = {k: v for k, v in params.items() if k in control_shown}
                ccfg["params"] = cparams
                controls[key] = (ccfg, cparams)
            config["control_id"] = controls[key][0]["config_id"]

    trials: list[TrialPlan] = []

    def add(config: dict[str, Any], params: dict[str, Any]) -> None:
        for seed in spec.seeds:
            c = json.loads(json.dumps(config))  # a private copy per trial
            c["seed"] = seed
            trials.append(TrialPlan(config_id=c["config_id"], arm=c["arm"], seed=seed,
                                    params=dict(params), config=c))

    for ccfg, cparams in controls.values():
        add(ccfg, cparams)
    for config, _view, params in rewards:
        add(config, params)
    return Expansion(trials=trials, points=points, duplicates=duplicates,
                     reward_configs=len(rewards), control_configs=len(controls), seeds=spec.seeds)


def expand(spec: Spec) -> list[TrialPlan]:
    """Every (configuration, arm, seed) of the study: controls first, then reward configs.

    Identical configurations (after setting what the chosen settings ignore to None) are
    kept once. ``config["start"]`` is None: the launcher resolves it once per study.
    """
    return expand_study(spec).trials
