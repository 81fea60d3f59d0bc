"""Read a study's search-space YAML and validate it into a :class:`Spec`.

    spec = load_spec("search_spaces/baseline.yaml")     # raises SpecError, one line
    trials = expand(spec)                                # list[TrialPlan]

Everything is checked before anything starts: every error is one line that names the
file, the line, the dotted key and what was expected. A spec that loads has been expanded
once, so every trial it would run passes the trial's own checks. Pure Python (PyYAML,
numpy for sampling): it never imports torch, MMSeg or Ray.

The parts live next door and their public names are importable from here too:
``yaml_lines`` (YAML with line numbers), ``schema`` (the keys a spec may give and their
checks) and ``expand`` (trials, config ids, control pairing). ``docs/search_spaces.md``
is the user's view of every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from rewardsweep.errors import SpecError
from rewardsweep.study import layout
from rewardsweep.sweep.expand import (
    CONTROL_KEYS,
    RUNTIME_FIELDS,
    Expansion,
    TrialPlan,
    config_hash,
    expand,
    expand_study,
)
from rewardsweep.sweep.formatting import as_written
from rewardsweep.sweep.schema import (
    CONTROL_GRID_GROUPS,
    CONTROLS,
    REFERENCES,
    DEFAULTS,
    GROUPS,
    PARAM_KEYS,
    REAL_KEYS,
    STUDY_NAME,
    TOP_KEYS,
    TOP_LEVEL_PARAMS,
    WANDB_MODES,
    Invalid,
    int_at_least,
    number_between,
    one_of,
)
from rewardsweep.trial_config import default
from rewardsweep.sweep.yaml_lines import YamlError, line_of, line_table, parse_yaml, where

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
    "CONTROL_KEYS",
    "RUNTIME_FIELDS",
]

_DISTRIBUTIONS = ("choice", "uniform", "loguniform")

# --------------------------------------------------------------------------------------
# The validated spec
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    num_samples: int
    seed: int
    params: dict[str, tuple[str, Any]]  # dotted key -> ("choice", [assignments]) | ("uniform", (lo, hi)) | ...

    def leaves(self) -> list[str]:
        """The parameter leaves a draw may set (in the spec's order; repeats possible)."""
        out: list[str] = []
        for key, (kind, arg) in self.params.items():
            out += [leaf for a in arg for leaf in a] if kind == "choice" else [key]
        return out


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
    control_grid: dict[str, list] # extra cross-entropy arms: lr/optimizer keys -> values (like grid)
    reference: str                # "noop" | "none": the no-update reference arm
    diagnostics_every: int        # treatment probe interval in reward trials (0: off)
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
        return where(self.source, self.lines, key)


# --------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------


class _SpecFile:
    """The spec being read: says where a key is when something is wrong, resolves paths."""

    def __init__(self, source: str, folder: Path, lines: dict[str, int]) -> None:
        self.source, self.folder, self.lines = source, folder, lines

    def fail(self, key: str, message: str) -> SpecError:
        """``file:line: key: message`` (one line)."""
        return SpecError(f"{where(self.source, self.lines, key)}: {key}: {' '.join(str(message).split())}")

    def checked(self, key: str, check: Callable[[Any], Any], value: Any, note: str = "") -> Any:
        """``check(value)``, or the error naming ``key`` (with ``note`` after what was expected)."""
        try:
            return check(value)
        except Invalid as exc:
            raise self.fail(key, f"{exc}{note}") from None

    def resolve(self, ref: str) -> Path:
        """A path as written in the spec: relative ones are read from the spec's folder."""
        path = Path(os.path.expanduser(ref))
        return path if path.is_absolute() else (self.folder / path)


def _read_spec_file(path: Path, source: str) -> tuple[Any, str]:
    """(parsed YAML with line numbers, text as written)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such search-space file") from None
    except IsADirectoryError:
        raise SpecError(f"{source}: is a folder; expected a search-space .yaml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{source}: cannot read the search-space file ({exc})") from None
    try:
        return parse_yaml(text, source), text
    except YamlError as exc:
        raise SpecError(str(exc)) from None


def _suggest(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expand_env(file: _SpecFile, key: str, value: str) -> str:
    """``$VAR``/``${VAR}`` in a path; an unset variable is an error, not an empty string."""
    def sub(match: re.Match) -> str:
        var = match.group(1) or match.group(2)
        if var not in os.environ:
            raise file.fail(key, f"environment variable {var} is not set (used in {value!r})")
        return os.environ[var]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)


# --------------------------------------------------------------------------------------
# load_spec and its steps, in the order the checks run (the first error wins)
# --------------------------------------------------------------------------------------


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
    raw, text = _read_spec_file(fpath, source)
    fpath = fpath.resolve()
    file = _SpecFile(source, fpath.parent, line_table(raw))
    _check_top_keys(file, raw)
    name = _read_name(file, raw["name"])
    description = _read_description(file, raw.get("description"))
    model_ref, model = _read_model(file, raw["model"])
    data_root_ref, data_root = _read_data_root(file, raw.get("data_root"))
    seeds = _read_seeds(file, raw["seeds"])
    fixed, origins, grid, sample = _read_parameters(file, raw)
    eval_every = file.checked("eval_every", int_at_least(1), raw["eval_every"])
    control = _read_control(file, raw.get("control", "mle"))
    control_grid = _parse_grid(file, raw.get("control_grid"), section="control_grid")
    if control_grid and control != "mle":
        raise file.fail("control_grid", "extra cross-entropy arms need control: mle; set control: mle "
                                        "or remove control_grid")
    reference = file.checked("reference", one_of(REFERENCES), raw.get("reference") or "none",
                             " (noop: the same batches with no update, the zero line of BatchNorm drift)")
    diagnostics_every = file.checked("diagnostics_every", int_at_least(0),
                                     raw.get("diagnostics_every", default("diagnostics_every")),
                                     " (treatment probe interval in steps; 0: off)")
    resources = _read_resources(file, raw.get("resources") or {})
    max_concurrent = _read_max_concurrent(file, raw.get("max_concurrent"), max_concurrent)
    storage, study_dir = _read_storage(file, raw.get("storage", "runs"), storage, name)
    wandb = _read_wandb(file, raw.get("wandb") or {}, wandb_mode)
    retries = file.checked("retries", int_at_least(0), raw.get("retries", 1),
                           " (times Ray retries a failed trial)")
    spec = Spec(
        source=source, path=fpath, text=text, name=name, description=description,
        model=model, model_ref=model_ref, data_root=data_root, data_root_ref=data_root_ref,
        seeds=seeds, eval_every=eval_every, control=control, control_grid=control_grid,
        reference=reference, diagnostics_every=diagnostics_every, fixed=fixed, grid=grid,
        sample=sample, resources=resources, max_concurrent=max_concurrent, storage=storage,
        study_dir=study_dir, wandb=wandb, retries=retries, lines=file.lines, origins=origins,
    )
    expand_study(spec)  # validates every trial
    return spec


def _check_top_keys(file: _SpecFile, raw: Any) -> None:
    """A mapping with only known top-level keys and every required one."""
    source = file.source
    if raw is None:
        raise SpecError(f"{source}: empty file; expected a search space (see search_spaces/baseline.yaml)")
    if not isinstance(raw, Mapping):
        kind = "a list" if isinstance(raw, list) else f"a single value ({as_written(raw)})"
        raise SpecError(f"{source}:1: the top level is {kind}; expected a mapping of keys "
                        f"(name, model, seeds, ...)")
    for key in raw:
        if key not in TOP_KEYS:
            skey = str(key)
            raise file.fail(skey, f"unknown key {skey!r}; expected one of "
                                  f"{', '.join(TOP_KEYS)}{_top_key_hint(skey)}")
    for key, required in TOP_KEYS.items():
        if required and key not in raw:
            raise SpecError(f"{source}: {key}: missing required key")


def _top_key_hint(key: str) -> str:
    """A trial parameter given at the top level belongs under fixed:; else a near miss."""
    if key in PARAM_KEYS or key in GROUPS:
        return f" (trial parameters go under fixed:, grid: or sample:, e.g. fixed: {{{key}: ...}})"
    hint = _suggest(key, list(TOP_KEYS))
    if not hint:
        close = difflib.get_close_matches(key, list(PARAM_KEYS) + list(GROUPS), n=1, cutoff=0.6)
        hint = f" (did you mean fixed: {{{close[0]}: ...}}?)" if close else ""
    return hint


def _read_name(file: _SpecFile, name: Any) -> str:
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not STUDY_NAME.match(name) or set(name) == {"."}:
        raise file.fail("name", f"{as_written(name)} is not a study name; expected letters, digits, "
                                f"'_', '.' or '-' (it names the folder <storage>/<name>)")
    return name


def _read_description(file: _SpecFile, description: Any) -> str | None:
    if description is not None and not isinstance(description, str):
        raise file.fail("description", f"{as_written(description)} is not text; expected a string")
    return description


def _read_model(file: _SpecFile, model_ref: Any) -> tuple[str, str]:
    """(as written, what run_trial takes): a preset name, or the absolute path of a config .py."""
    if not isinstance(model_ref, str) or not model_ref:
        raise file.fail("model", f"{as_written(model_ref)} is not a model; expected a preset name or a "
                                 f"path to an MMSeg config .py")
    from rewardsweep.runners.presets import preset_names  # torch-free; loads the dataset presets

    presets = tuple(preset_names())
    if model_ref in presets:
        return model_ref, model_ref
    if model_ref.endswith(".py") or "/" in model_ref or os.sep in model_ref:
        mpath = file.resolve(model_ref)
        if not mpath.is_file():
            raise file.fail("model", f"MMSeg config {model_ref!r} not found (looked for {mpath}); "
                                     f"expected a preset ({', '.join(presets)}) or an existing "
                                     f"config .py")
        if mpath.suffix != ".py":
            raise file.fail("model", f"{model_ref!r} is not a .py file; expected an MMSeg config .py")
        return model_ref, str(mpath.resolve())
    close = difflib.get_close_matches(model_ref, presets, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise file.fail("model", f"unknown preset {model_ref!r}; expected one of {', '.join(presets)} "
                             f"or a path to an MMSeg config .py{hint}")


def _read_data_root(file: _SpecFile, data_root_ref: Any) -> tuple[str | None, str | None]:
    """(as written, absolute). Not checked for existence: it may live on the workers only."""
    if data_root_ref is None:
        return None, None
    if not isinstance(data_root_ref, str) or not data_root_ref:
        raise file.fail("data_root", f"{as_written(data_root_ref)} is not a path; expected a folder "
                                     f"(or leave it out for the preset's default)")
    return data_root_ref, str(file.resolve(_expand_env(file, "data_root", data_root_ref)))


def _read_seeds(file: _SpecFile, seeds: Any) -> tuple[int, ...]:
    """A count N (seeds 0..N-1) or a list of distinct seeds."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list)):
        raise file.fail("seeds", f"{as_written(seeds)} is not allowed; expected a count N >= 1 "
                                 f"(seeds 0..N-1) or a list of distinct integers >= 0")
    if isinstance(seeds, int):
        if seeds < 1:
            raise file.fail("seeds", f"{seeds} is not a count; expected N >= 1 (seeds 0..N-1) or "
                                     f"a list of distinct integers >= 0")
        return tuple(range(seeds))
    if not seeds:
        raise file.fail("seeds", "empty list; expected at least one seed")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise file.fail(f"seeds[{i}]", f"{as_written(s)} is not a seed; expected an integer >= 0")
        if s in seeds[:i]:
            raise file.fail(f"seeds[{i}]", f"seed {s} is listed twice; expected distinct seeds")
    return tuple(int(s) for s in seeds)


def _read_control(file: _SpecFile, control: Any) -> str:
    if control is None or control is False:
        control = "none"
    return file.checked("control", one_of(CONTROLS), control)


def _read_resources(file: _SpecFile, resources: Any) -> dict[str, float]:
    """Per trial: cpu > 0 (default 1), gpu >= 0 (default 0; fractions share a GPU)."""
    if not isinstance(resources, Mapping):
        raise file.fail("resources", f"{as_written(resources)} is not a mapping; expected {{cpu: N, gpu: G}}")
    out = {"cpu": 1.0, "gpu": 0.0}
    for key, value in resources.items():
        if key not in out:
            raise file.fail(f"resources.{key}", f"unknown key {key!r}; expected cpu or gpu"
                                                f"{_suggest(str(key), ['cpu', 'gpu'])}")
        if key == "cpu":
            out[key] = file.checked("resources.cpu", number_between(0.0, lo_open=True), value,
                                    " (CPUs per trial)")
        else:
            out[key] = file.checked("resources.gpu", number_between(0.0), value,
                                    " (GPUs per trial, fractions allowed)")
    return out


def _read_max_concurrent(file: _SpecFile, in_spec: Any, override: int | None) -> int | None:
    """The spec's max_concurrent, or ``--max-concurrent`` (which names itself when wrong)."""
    if override is None:
        return None if in_spec is None else file.checked("max_concurrent", int_at_least(1), in_spec)
    try:
        return int_at_least(1)(override)
    except Invalid as exc:
        raise SpecError(f"--max-concurrent: {exc}") from None


def _read_storage(file: _SpecFile, in_spec: Any, override: str | None, name: str) -> tuple[str, str]:
    """(storage, study folder): absolute paths, or a URI Ray accepts passed through."""
    ref = override if override is not None else in_spec
    if not isinstance(ref, str) or not ref:
        if override is not None:
            raise SpecError("--storage: expected a folder or a URI")
        raise file.fail("storage", f"{as_written(ref)} is not a path; expected a folder or a URI "
                                   f"Ray accepts (default runs)")
    if override is None:
        ref = layout.expand_env_vars(ref, source=f"{where(file.source, file.lines, 'storage')}: storage")
    if layout.is_uri(ref):  # passed through here; launch refuses it (layout.study_dir_from_storage)
        storage = ref.rstrip("/")
        return storage, f"{storage}/{name}"
    study_dir = layout.study_dir_from_storage(ref, name, expand_env=False)
    return str(study_dir.parent), str(study_dir)


def _read_wandb(file: _SpecFile, wandb: Any, mode_override: str | None) -> dict[str, Any]:
    """{project, entity, mode, tags} with defaults; ``--wandb`` overrides the mode."""
    if not isinstance(wandb, Mapping):
        raise file.fail("wandb", f"{as_written(wandb)} is not a mapping; expected {{project, entity, mode, tags}}")
    out = {"project": "rewardsweep", "entity": None, "mode": "offline", "tags": []}
    for key, value in wandb.items():
        at = f"wandb.{key}"
        if key not in out:
            raise file.fail(at, f"unknown key {key!r}; expected one of {', '.join(out)}"
                                f"{_suggest(str(key), list(out))}")
        if key == "mode":
            value = file.checked(at, one_of(WANDB_MODES), value)
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise file.fail(at, f"{as_written(value)} is not allowed; expected a list of strings")
            value = list(value)
        elif key == "project" and (not isinstance(value, str) or not value):
            raise file.fail(at, f"{as_written(value)} is not a project name; expected a string")
        elif key == "entity" and value is not None and (not isinstance(value, str) or not value):
            raise file.fail(at, f"{as_written(value)} is not an entity; expected a string or null")
        out[key] = value
    if mode_override is not None:
        try:
            out["mode"] = one_of(WANDB_MODES)(mode_override)
        except Invalid as exc:
            raise SpecError(f"--wandb: {exc}") from None
    return out


# --------------------------------------------------------------------------------------
# Trial parameters: fixed, top-level steps/checkpoint/batch_size/pretrain, grid, sample
# --------------------------------------------------------------------------------------


def _read_parameters(file: _SpecFile, raw: Mapping) -> tuple[dict[str, Any], dict[str, str],
                                                             dict[str, list[dict[str, Any]]],
                                                             SampleSpec | None]:
    """(fixed, where each fixed leaf was given, grid, sample), each key given in one place."""
    fixed, origins = _parse_fixed(file, raw.get("fixed"))
    _add_top_level_params(file, raw, fixed, origins)
    grid = _parse_grid(file, raw.get("grid"))
    sample = _parse_sample(file, raw.get("sample"))
    _check_overlaps(file, fixed, origins, grid, sample)
    varied = {leaf for values in grid.values() for a in values for leaf in a}
    varied |= set(sample.leaves() if sample is not None else ())
    if fixed.get("pretrain.iters") is not None and fixed.get("checkpoint", "auto") != "auto" \
            and "checkpoint" not in varied:
        raise file.fail(origins["pretrain.iters"], "pretrain is only used with checkpoint: auto (the "
                                                   "checkpoint is a file here); remove it")
    if "steps" not in fixed and "steps" not in varied:
        raise SpecError(f"{file.source}: steps: missing required key (reward-tuning steps, an integer "
                        f">= 1; or vary it under grid:)")
    return fixed, origins, grid, sample


def _check_param(file: _SpecFile, key: str, at: str, value: Any) -> Any:
    """Validate one leaf value of parameter ``key`` given at YAML path ``at``."""
    value = file.checked(at, PARAM_KEYS[key].check, value)
    if key == "checkpoint" and value != "auto":
        path = file.resolve(value)
        if not path.is_file():
            raise file.fail(at, f"checkpoint file {value!r} not found (looked for {path}); expected "
                                f"auto or an existing checkpoint file")
    if key == "class_weights.counts" and isinstance(value, str):
        path = file.resolve(value)
        if not path.is_file():
            raise file.fail(at, f"class counts file {value!r} not found (looked for {path}); expected "
                                f"a .json written by `rewardsweep class-weights` or a list of counts")
    return value


def _unknown_param(file: _SpecFile, at: str, key: str) -> SpecError:
    candidates = list(PARAM_KEYS) + list(GROUPS)
    return file.fail(at, f"unknown parameter {key!r}; expected one of the trial-config keys "
                         f"(see docs/search_spaces.md){_suggest(key, candidates)}")


def _flatten_value(file: _SpecFile, key: str, at: str, value: Any) -> dict[str, Any]:
    """A parameter assignment ``key: value`` -> {leaf: value}. Groups take mappings."""
    if key in GROUPS:
        if key == "class_weights" and (value is None or value is False):
            return {"class_weights": False}
        if not isinstance(value, Mapping):
            if key == "class_weights":
                raise file.fail(at, f"{as_written(value)} is not allowed; expected null or false (off) "
                                    f"or a mapping {{counts: ..., smooth: ...}}")
            raise file.fail(at, f"{as_written(value)} is not a mapping; expected a mapping of "
                                f"{', '.join(k.split('.', 1)[1] for k in PARAM_KEYS if k.startswith(key + '.'))}")
        out: dict[str, Any] = {"class_weights": True} if key == "class_weights" else {}
        for sub, subvalue in value.items():
            leaf = f"{key}.{sub}"
            sub_at = f"{at}.{sub}"
            if leaf not in PARAM_KEYS:
                raise _unknown_param(file, sub_at, leaf)
            out[leaf] = _check_param(file, leaf, sub_at, subvalue)
        return out
    if key not in PARAM_KEYS:
        raise _unknown_param(file, at, key)
    out = {key: _check_param(file, key, at, value)}
    if key == "class_weights.counts" and out[key] is not None:
        out["class_weights"] = True
    return out


def _flatten_values(file: _SpecFile, key: str, at: str, values: list) -> list[dict[str, Any]]:
    """The values listed for ``key`` (grid or choice), flattened; a repeat is an error."""
    assignments: list[dict[str, Any]] = []
    for i, value in enumerate(values):
        assignment = _flatten_value(file, key, f"{at}[{i}]", value)
        if assignment in assignments:
            raise file.fail(f"{at}[{i}]", f"value {as_written(value)} is listed twice")
        assignments.append(assignment)
    return assignments


def _parse_fixed(file: _SpecFile, fixed: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """fixed -> ({leaf: value}, {leaf: YAML path that gave it})."""
    if fixed is None:
        return {}, {}
    if not isinstance(fixed, Mapping):
        raise file.fail("fixed", f"{as_written(fixed)} is not a mapping; expected a mapping of "
                                 f"trial-config keys to values")
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, value in fixed.items():
        key = str(key)
        at = f"fixed.{key}"
        for leaf, leaf_value in _flatten_value(file, key, at, value).items():
            if leaf in values:
                if leaf == "class_weights" and values[leaf] == leaf_value:
                    continue
                raise file.fail(at, f"{leaf} is given twice in fixed (also at {origins[leaf]})")
            values[leaf] = leaf_value
            origins[leaf] = at if leaf == key or leaf == "class_weights" else f"{at}.{leaf.split('.', 1)[1]}"
    return values, origins


def _add_top_level_params(file: _SpecFile, raw: Mapping, fixed: dict[str, Any],
                          origins: dict[str, str]) -> None:
    """steps, checkpoint, batch_size and pretrain.iters may also be given at the top level."""
    for key in TOP_LEVEL_PARAMS:
        if key in raw:
            value = _check_param(file, key, key, raw[key])
            if key in fixed:
                raise file.fail(key, f"given both at top level and at {origins[key]} (line "
                                     f"{file.lines.get(origins[key], '?')}); give it once")
            fixed[key], origins[key] = value, key
    if "pretrain" not in raw:
        return
    pre = raw["pretrain"]
    if not isinstance(pre, Mapping):
        raise file.fail("pretrain", f"{as_written(pre)} is not a mapping; expected {{iters: N}}")
    for k in pre:
        if k != "iters":
            raise file.fail(f"pretrain.{k}", f"unknown key {k!r}; expected iters{_suggest(str(k), ['iters'])}")
    if "iters" in pre:
        if "pretrain.iters" in fixed:
            raise file.fail("pretrain.iters", f"given both here and at {origins['pretrain.iters']}; "
                                              f"give it once")
        fixed["pretrain.iters"] = _check_param(file, "pretrain.iters", "pretrain.iters", pre["iters"])
        origins["pretrain.iters"] = "pretrain.iters"


def _parse_grid(file: _SpecFile, grid: Any, section: str = "grid") -> dict[str, list[dict[str, Any]]]:
    """grid (or control_grid) -> {key as written: [flattened assignment per value]}."""
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise file.fail(section, f"{as_written(grid)} is not a mapping; expected dotted keys mapped to "
                                 f"lists of values")
    out: dict[str, list[dict[str, Any]]] = {}
    for key, values in grid.items():
        key = str(key)
        at = f"{section}.{key}"
        if key not in PARAM_KEYS and key not in GROUPS:
            raise _unknown_param(file, at, key)
        if section == "control_grid" and key.split(".")[0] not in CONTROL_GRID_GROUPS:
            raise file.fail(at, f"{key!r} cannot vary in the control arm; expected lr or optimizer keys "
                                f"(the cross-entropy arm's own learning rate and optimizer)")
        if not isinstance(values, list):
            raise file.fail(at, f"{as_written(values)} is not a list; expected a non-empty list of values "
                                f"(a single value belongs under fixed:)")
        if not values:
            raise file.fail(at, "empty list; expected at least one value")
        out[key] = _flatten_values(file, key, at, values)
    return out


def _parse_sample(file: _SpecFile, sample: Any) -> SampleSpec | None:
    """sample -> SampleSpec (num_samples, seed, {key: distribution})."""
    if sample is None:
        return None
    if not isinstance(sample, Mapping):
        raise file.fail("sample", f"{as_written(sample)} is not a mapping; expected {{num_samples: N, "
                                  f"seed: S, params: {{key: {{choice|uniform|loguniform: ...}}}}}}")
    allowed = ("num_samples", "seed", "params")
    for key in sample:
        if key not in allowed:
            raise file.fail(f"sample.{key}", f"unknown key {key!r}; expected one of "
                                             f"{', '.join(allowed)}{_suggest(str(key), list(allowed))}")
    for key in ("num_samples", "params"):
        if key not in sample:
            raise file.fail("sample", f"missing key sample.{key}")
    num = file.checked("sample.num_samples", int_at_least(1), sample["num_samples"])
    seed = file.checked("sample.seed", int_at_least(0), sample.get("seed", 0))
    params = sample["params"]
    if not isinstance(params, Mapping) or not params:
        raise file.fail("sample.params", f"{as_written(params)} is not allowed; expected a non-empty mapping "
                                         f"of dotted keys to {{choice: [...]}}, {{uniform: [lo, hi]}} "
                                         f"or {{loguniform: [lo, hi]}}")
    out = {str(key): _parse_distribution(file, str(key), dist) for key, dist in params.items()}
    return SampleSpec(num_samples=num, seed=seed, params=out)


def _parse_distribution(file: _SpecFile, key: str, dist: Any) -> tuple[str, Any]:
    """``{choice: [...]}`` -> ("choice", [assignments]); uniform/loguniform -> (kind, (lo, hi))."""
    at = f"sample.params.{key}"
    if key not in PARAM_KEYS and key not in GROUPS:
        raise _unknown_param(file, at, key)
    if not isinstance(dist, Mapping) or len(dist) != 1:
        raise file.fail(at, f"{as_written(dist)} is not a distribution; expected exactly one of "
                            f"{{choice: [...]}}, {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}")
    (kind, arg), = dist.items()
    if kind not in _DISTRIBUTIONS:
        raise file.fail(f"{at}.{kind}", f"unknown distribution {kind!r}; expected one of "
                                        f"{', '.join(_DISTRIBUTIONS)}{_suggest(str(kind), list(_DISTRIBUTIONS))}")
    at = f"{at}.{kind}"
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise file.fail(at, f"{as_written(arg)} is not allowed; expected a non-empty list of values")
        return "choice", _flatten_values(file, key, at, arg)
    if key not in REAL_KEYS:
        takes = "integers" if key in PARAM_KEYS and PARAM_KEYS[key].kind == "int" else "fixed values"
        raise file.fail(at, f"{kind} draws real numbers but {key} takes {takes}; use {{choice: [...]}}")
    if (not isinstance(arg, list) or len(arg) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in arg)):
        raise file.fail(at, f"{as_written(arg)} is not allowed; expected [lo, hi], two numbers")
    lo, hi = float(arg[0]), float(arg[1])
    if not lo < hi:
        raise file.fail(at, f"[{lo:g}, {hi:g}] is empty; expected lo < hi")
    if kind == "loguniform" and lo <= 0:
        raise file.fail(at, f"[{lo:g}, {hi:g}] starts at or below 0; loguniform needs 0 < lo < hi")
    for bound in (lo, hi):
        _check_param(file, key, at, bound)
    return kind, (lo, hi)


def _check_overlaps(file: _SpecFile, fixed: dict[str, Any], origins: dict[str, str],
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
                line = line_of(file.lines, origins[leaf])
                fixed_at = f"{origins[leaf]}, line {line}" if line else origins[leaf]
                raise file.fail(at, f"{leaf} is both fixed ({fixed_at}) and varied here; give it in "
                                    f"one place only")
    for (at1, v1), (at2, v2) in itertools.combinations(varied, 2):
        leaves1 = set().union(*(v.keys() for v in v1)) - {"class_weights"}
        leaves2 = set().union(*(v.keys() for v in v2)) - {"class_weights"}
        if at1.rsplit(".", 1)[-1] == at2.rsplit(".", 1)[-1] or leaves1 & leaves2:
            common = ", ".join(sorted(leaves1 & leaves2)) or at2.rsplit(".", 1)[-1]
            line = line_of(file.lines, at1)
            raise file.fail(at2, f"{common} is also varied at {at1}{f', line {line}' if line else ''}; "
                                 f"vary each key in one place only")
