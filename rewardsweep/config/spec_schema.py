"""The study spec's schema: the top-level keys of a search space and its parameter sections.

``StudyFile`` (pydantic) declares every top-level key: default, check and help. The
parameter sections (``fixed``, ``grid``, ``sample``, ``control_grid`` and the top-level
``steps``/``checkpoint``/``batch_size``/``pretrain``) are the spec language proper:
:func:`read_parameters` flattens them into dotted trial-config keys (``PARAMS`` of
``config/trial.py``), checks every value with that key's own check, and refuses a key
given in two places. What needs the file system or the presets (paths, the model) is
resolved by :func:`rewardsweep.sweep.spec.load_study` into a :class:`Spec`: the
``StudyFile`` as validated (inherited, field for field) with the resolved values. A new
top-level key is one ``StudyFile`` field; its reader finds it as ``spec.<key>``.
``docs/search_spaces.md`` is the user's view.
"""

import dataclasses
import functools
import itertools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rewardsweep.checkpoint_file import checkpoint_problem
from rewardsweep.checks import (
    Invalid,
    boolean,
    checked,
    did_you_mean,
    first_error,
    int_at_least,
    is_url,
    model_at,
    number_between,
    one_of,
    or_null,
    text,
)
from rewardsweep.config.messages import SpecFile
from rewardsweep.config.trial import GROUPS, PARAMS, TrialParams, default
from rewardsweep.config.yaml import line_of
from rewardsweep.errors import SpecError
from rewardsweep.study import arms
from rewardsweep.formatting import as_written
from rewardsweep.wandb_settings import WANDB_MODES

__all__ = ["StudyFile", "Resources", "Wandb", "Parameters", "SampleSpec", "Spec", "read_parameters",
           "top_key_hint", "CONTROLS", "REFERENCES", "CONTROL_GRID_GROUPS", "WANDB_MODES", "DISTRIBUTIONS",
           "TOP_LEVEL_PARAMS", "SPEC_DEFAULTS", "SequentialSeeds", "CHECKPOINT_ARMS",
           "MAX_SPEC_BYTES", "DEFAULT_MAX_TRIALS", "SEED_LIMIT", "check_study_size"]

# the values of the spec switches that turn paired arms on (study.arms), and "none"
CONTROLS = (*(a.switch[1] for a in arms.paired() if a.switch and a.switch[0] == "control"), "none")
REFERENCES = (*(a.switch[1] for a in arms.paired() if a.switch and a.switch[0] == "reference"), "none")
DISTRIBUTIONS = ("choice", "uniform", "loguniform")
# What a control_grid may vary: the groups the schema marks (the cross-entropy arm's own
# learning rate and optimizer: TrialParams' fields with json_schema_extra control_grid).
CONTROL_GRID_GROUPS = tuple(name for name, f in TrialParams.model_fields.items()
                            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("control_grid"))
_STUDY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_NAME_LENGTH = 100   # a folder name may be 255 bytes; W&B group names add to it
# Limits that keep any spec's work bounded (docs/search_spaces.md, "Limits"): the file's
# size, and the trials it may describe unless it raises max_trials itself.
MAX_SPEC_BYTES = 256 * 1024
DEFAULT_MAX_TRIALS = 10_000
SEED_LIMIT = 2 ** 32    # numpy's seed range: a trial's seed must be below it


def _spec_default(key: str) -> Any:
    """A parameter left unset in a spec: the ``spec_default`` its field declares (class
    weights smooth with 0.05 when switched on), else the trial default (None if required)."""
    *group, name = key.split(".")
    field = (model_at(TrialParams, tuple(group)) if group else TrialParams).model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "spec_default" in extra:
        return extra["spec_default"]
    return None if field.is_required() else PARAMS[key].default


# What an unset parameter is in a spec (:func:`_spec_default`), except that steps is
# required and class weights are off unless given.
SPEC_DEFAULTS: dict[str, Any] = {
    **{key: _spec_default(key) for key, p in PARAMS.items() if p.kind != "group"},
    "steps": None, "class_weights": False}


def _noted(check: Any, note: str) -> Any:
    """``check`` with ``note`` after its message (what the key is for)."""
    def wrapped(value: Any) -> Any:
        try:
            return check(value)
        except Invalid as exc:
            raise Invalid(f"{exc}{note}", key=exc.key) from None

    wrapped.expected = getattr(check, "expected", "")  # type: ignore[attr-defined]
    return wrapped


def _study_name(name: Any) -> str:
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        # YAML reads 1e3 as 1000.0 and 007 as 7: the folder would not be named as written
        raise Invalid(f"{as_written(name)} is a number in YAML, not text, so the study folder would not be "
                      f"named as you wrote it; quote it (name: \"...\")")
    if not isinstance(name, str) or not _STUDY_NAME.match(name) or set(name) == {"."}:
        raise Invalid(f"{as_written(name)} is not a study name; expected letters, digits, '_', '.' or '-' "
                      f"(it names the folder <storage>/<name>)")
    if len(name) > MAX_NAME_LENGTH:
        raise Invalid(f"{len(name)} characters is too long; expected at most {MAX_NAME_LENGTH} (it names "
                      f"the folder <storage>/<name>, and W&B groups)")
    return name


class SequentialSeeds(BaseModel):
    """``seeds: {initial, step, max, alpha, effect, margin}``: seeds are added in looks
    (``initial``, then ``step`` more each look, up to ``max``) only for configurations still
    undecided against their control, with the family-wise error kept at ``alpha``
    (docs/report.md, "Sequential studies")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    initial: checked(int_at_least(2)) = Field(..., description="seeds of the first look (>= 2: a paired test needs two)")
    step: checked(int_at_least(2)) = Field(..., description="seeds added at each later look (>= 2: each "
                                                                "look's batch gets its own paired test)")
    max: checked(int_at_least(2)) = Field(..., description="the most seeds a configuration gets")
    alpha: checked(number_between(0.0, 0.5, lo_open=True, hi_open=True)) = Field(
        0.05, description="family-wise error rate over every configuration and look")
    effect: checked(number_between(0.0, lo_open=True)) = Field(
        ..., description="the improvement worth finding, in mIoU points: the design is powered for it")
    margin: checked(or_null(number_between(0.0, lo_open=True))) = Field(
        None, description="optional: |difference| below this many mIoU points is 'equivalent'")

    @model_validator(mode="after")
    def _fits(self) -> "SequentialSeeds":
        if self.max < self.initial:
            raise Invalid(f"max {self.max} is below initial {self.initial}; expected initial <= max", key="max")
        if self.max > SEED_LIMIT:
            raise Invalid(f"max {self.max} runs past seed 2^32 - 1; expected max <= 2^32 (numpy's seed range)",
                          key="max")
        if self.max == self.initial + 1:
            raise Invalid(f"max {self.max} adds a look of one seed; expected max = initial or >= initial + 2 "
                          f"(each look's new seeds get their own paired test)", key="max")
        return self


def _seeds(seeds: Any) -> range | tuple[int, ...] | SequentialSeeds:
    """A count N (seeds 0..N-1), a list of distinct seeds, or a sequential design."""
    if isinstance(seeds, Mapping):
        try:
            return SequentialSeeds.model_validate(dict(seeds))
        except ValidationError as exc:
            key, message = first_error(exc, SequentialSeeds)
            raise Invalid(message, key=f"seeds.{key}" if key else "seeds") from None
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list)):
        raise Invalid(f"{as_written(seeds)} is not allowed; expected a count N >= 1 (seeds 0..N-1), a list "
                      f"of distinct integers >= 0, or {{initial, step, max, effect}} (a sequential study)")
    if isinstance(seeds, int):
        if seeds < 1:
            raise Invalid(f"{seeds} is not a count; expected N >= 1 (seeds 0..N-1) or a list of distinct "
                          f"integers >= 0")
        if seeds > SEED_LIMIT:
            raise Invalid(f"{seeds} seeds run past seed 2^32 - 1; expected a count <= 2^32 (numpy's seed range)")
        return range(seeds)   # not a tuple yet: the study's size is checked before anything is built
    if not seeds:
        raise Invalid("empty list; expected at least one seed")
    seen: set[int] = set()
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise Invalid(f"{as_written(s)} is not a seed; expected an integer >= 0", key=f"seeds[{i}]")
        if s >= SEED_LIMIT:
            raise Invalid(f"seed {s} is too large; expected an integer below 2^32 = {SEED_LIMIT} (numpy's "
                          f"seed range)", key=f"seeds[{i}]")
        if s in seen:
            raise Invalid(f"seed {s} is listed twice; expected distinct seeds", key=f"seeds[{i}]")
        seen.add(s)
    return tuple(int(s) for s in seeds)


CHECKPOINT_ARMS = arms.NAMES
_CHECKPOINTS_EXPECTED = ("none, final (every arm) or {final: [arms]} with arms from "
                         + ", ".join(CHECKPOINT_ARMS))


def _checkpoints(value: Any) -> tuple[str, ...]:
    """``checkpoints:`` -> the arms whose finished trials keep their final weights."""
    if value is None or value is False or value == "none":
        return ()
    if value == "final":
        return CHECKPOINT_ARMS
    if isinstance(value, Mapping) and list(value) == ["final"] and isinstance(value["final"], list) \
            and value["final"]:
        for arm in value["final"]:
            if arm not in CHECKPOINT_ARMS:
                raise Invalid(f"{as_written(arm)} in final: is not an arm; expected some of "
                              f"{', '.join(CHECKPOINT_ARMS)}{did_you_mean(str(arm), CHECKPOINT_ARMS)}")
        return tuple(arm for arm in CHECKPOINT_ARMS if arm in value["final"])
    raise Invalid(f"{as_written(value)} is not allowed; expected {_CHECKPOINTS_EXPECTED}"
                  f"{did_you_mean(value, ('none', 'final')) if isinstance(value, str) else ''}")


_checkpoints.expected = _CHECKPOINTS_EXPECTED  # type: ignore[attr-defined]


def _switch(choices: tuple[str, ...], note: str = "") -> Any:
    """One of ``choices``; null/false mean "none"."""
    check = _noted(one_of(choices), note)

    def wrapped(value: Any) -> str:
        return check("none" if value is None or value is False else value)

    wrapped.expected = check.expected  # type: ignore[attr-defined]
    return wrapped


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    cpu: checked(_noted(number_between(0.0, lo_open=True), " (CPUs per trial)")) = Field(
        1.0, description="CPUs per trial")
    gpu: checked(_noted(number_between(0.0), " (GPUs per trial, fractions allowed)")) = Field(
        0.0, description="GPUs per trial (fractions share a GPU)")
    workers: checked(_noted(or_null(int_at_least(0), "null (the rule)"), " (loader worker processes per "
                                                                         "trial)")) = Field(
        None, description="loader worker processes per trial (null: cpu - 1 on a GPU, 0 on a CPU)")


class Wandb(_Strict):
    project: checked(text("a project name")) = Field("rewardsweep", description="W&B project")
    entity: checked(or_null(text("an entity"))) = Field(None, description="W&B entity (team or user)")
    mode: checked(one_of(WANDB_MODES)) = Field("offline", description="offline, online or disabled")
    tags: checked(lambda v: _tags(v)) = Field([], description="tags of every run")


def _tags(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(t, str) and t for t in value):
        return list(value)
    raise Invalid(f"{as_written(value)} is not allowed; expected a list of strings")


class StudyFile(_Strict):
    """The top level of a search space, as written (in this order in messages)."""

    name: checked(_study_name) = Field(..., description="the study; names the folder <storage>/<name>")
    description: checked(or_null(text("text"))) = Field(None, description="one line for reports")
    model: checked(text("a preset name or a path to an MMSeg config .py")) = Field(
        ..., description="a preset name or an MMSeg config .py")
    data_root: checked(or_null(text("a folder (or leave it out for the preset's default)"))) = Field(
        None, description="dataset folder ($VARS expanded)")
    checkpoint: Any = Field(None, description="start checkpoint (a trial parameter)")
    pretrain: Any = Field(None, description="MLE pretraining of checkpoint auto (a trial parameter)")
    seeds: checked(_seeds) = Field(..., description="a count N (seeds 0..N-1), a list of seeds, or a "
                                                     "sequential design {initial, step, max, alpha, effect, margin}")
    steps: Any = Field(None, description="reward-tuning steps (a trial parameter)")
    eval_every: checked(int_at_least(1)) = Field(..., description="evaluate every N steps")
    batch_size: Any = Field(None, description="images per step (a trial parameter)")
    control: checked(_switch(CONTROLS)) = Field("mle", description="the paired cross-entropy arm")
    control_grid: Any = Field(None, description="extra cross-entropy arms: lr/optimizer values")
    reference: checked(_switch(REFERENCES, " (noop: the same batches with no update, the zero line of "
                                           "BatchNorm drift)")) = Field("none", description="no-op reference arm")
    diagnostics_every: checked(_noted(int_at_least(0), " (treatment probe interval in steps; 0: off)")) = Field(
        default("diagnostics_every"), description="treatment probe interval in steps (0: off)")
    fixed: Any = Field(None, description="trial parameters every configuration shares")
    grid: Any = Field(None, description="trial parameters to cross: key -> list of values")
    sample: Any = Field(None, description="trial parameters to draw: num_samples, seed, params")
    resources: Resources = Field(Resources(), description="per trial: cpu, gpu, workers")
    cudnn_benchmark: checked(_noted(boolean, " (cuDNN picks the fastest convolution algorithms; GPU only)")) = Field(
        True, description="cuDNN picks the fastest convolution algorithms (GPU only)")
    max_concurrent: checked(or_null(int_at_least(1))) = Field(None, description="trials at once (null: as resources allow)")
    storage: checked(text("a folder")) = Field("runs", description="where study folders go ($VARS expanded)")
    wandb: Wandb = Field(Wandb(), description="project, entity, mode, tags")
    retries: checked(_noted(int_at_least(0), " (times Ray retries a failed trial)")) = Field(
        1, description="times Ray retries a failed trial")
    checkpoints: checked(_checkpoints) = Field(
        (), description="keep finished trials' final weights and MMEngine config in <study>/checkpoints/: "
                        "none, final, or {final: [arms]}")
    max_trials: checked(_noted(int_at_least(1), " (the most trials this spec may describe)")) = Field(
        DEFAULT_MAX_TRIALS, description="the most trials the spec may describe (grid points x samples x "
                                        "seeds x arms, before duplicates are removed)")

    @model_validator(mode="before")
    @classmethod
    def _null_groups_are_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not (v is None and k in _null_is_default(cls))}
        return data


@functools.cache
def _null_is_default(model: type[BaseModel]) -> frozenset[str]:
    """The optional top-level keys whose ``null`` means "the default": those whose own check
    gives null no meaning (``control: null`` is "none", ``checkpoints: null`` keeps nothing,
    so those keep their null)."""
    def takes_null(f: Any) -> bool:
        check = next((m.func for m in f.metadata if hasattr(m, "func")), None)
        if check is None:      # a section (resources, wandb) refuses null; Any takes it
            return not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))
        try:
            check(None)
        except Invalid:
            return False
        return True

    return frozenset(name for name, f in model.model_fields.items() if not f.is_required() and not takes_null(f))


# Parameters that may also be given at the top level (as well as under fixed/grid/sample):
# the StudyFile fields that are trial parameters (steps, checkpoint, batch_size, pretrain).
TOP_LEVEL_PARAMS = tuple(name for name in StudyFile.model_fields if name in PARAMS)


def top_key_hint(key: str, message: str) -> str:
    """An unknown top-level key: a trial parameter belongs under fixed:, else a near miss."""
    if not message.startswith("unknown key") or "." in key:
        return ""
    if key in PARAMS:
        return f" (trial parameters go under fixed:, grid: or sample:, e.g. fixed: {{{key}: ...}})"
    if "did you mean" not in message:
        hint = did_you_mean(key, PARAMS)
        return hint.replace("did you mean '", "did you mean fixed: {").replace("'?)", ": ...}?)") if hint else ""
    return ""


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


class Spec(StudyFile):
    """A validated search space: the top level as :class:`StudyFile` checked it (every field
    inherited, so a new top-level key is one ``StudyFile`` field and nothing here), with what
    :func:`rewardsweep.sweep.spec.load_study` resolves declared below: a field declared again
    here holds the resolved value (an absolute path, the parsed parameters), a new one what
    the file alone does not say. ``steps``/``checkpoint``/``batch_size``/``pretrain`` stay
    as written at the top level; the study's values are in ``fixed``/``grid``/``sample``.
    Build it with ``load_study`` (:meth:`resolved`)."""

    # the top level, resolved (overriding the field as written)
    model: str = Field(..., description="preset name, or absolute path of an MMSeg config .py")
    data_root: str | None = Field(None, description="absolute (or None: the preset's default)")
    seeds: tuple[int, ...] = Field(..., description="the seeds (a sequential design: 0..max-1 at most)")
    control_grid: dict[str, list] = Field({}, description="extra cross-entropy arms: lr/optimizer keys -> "
                                                          "values (like grid)")
    fixed: dict[str, Any] = Field({}, description="flat dotted key -> value (includes top-level steps etc.)")
    grid: dict[str, list] = Field({}, description="key as written -> one flat {leaf: value} per listed value "
                                                  "(internally, class_weights is an on/off switch)")
    sample: SampleSpec | None = Field(None, description="num_samples, seed, key -> distribution")
    resources: dict[str, Any] = Field(..., description='{"cpu": float, "gpu": float, "workers": int | None}')
    storage: str = Field(..., description="absolute path")
    wandb: dict[str, Any] = Field(..., description='{"project", "entity", "mode", "tags"} (--wandb applied)')
    # what the file alone does not say
    source: str = Field(..., description="the path as given (for messages)")
    path: Path = Field(..., description="absolute path of the YAML file")
    text: str = Field(..., description="the YAML as written (copied into the study folder)")
    model_ref: str = Field(..., description="the model as written in the spec (hashed)")
    data_root_ref: str | None = Field(None, description="data_root as written (hashed)")
    study_dir: str = Field(..., description="<storage>/<name>")
    lines: dict[str, int] = Field(..., description="dotted path in the YAML -> line")
    origins: dict[str, str] = Field(..., description='fixed key -> where it was given ("fixed.lr.start", "steps")')
    sequential: SequentialSeeds | None = Field(None, description="seeds added in looks (seeds: 0..max-1 at most)")
    num_classes: int | None = Field(None, description="the model's classes (class-weight counts must match); "
                                                      "None: unknown")

    @classmethod
    def resolved(cls, top: StudyFile, **resolved: Any) -> "Spec":
        """``top``'s fields as validated, then ``resolved``: exactly the fields :class:`Spec`
        declares itself (resolved values are not validated again)."""
        unknown = sorted(set(resolved) - set(cls.model_fields))
        missing = sorted(set(_declared(cls)) - set(resolved))
        if unknown or missing:
            raise TypeError(f"Spec.resolved: unknown {unknown}, missing {missing}")
        return cls.model_construct(**{**dict(top), **resolved})

    @property
    def threads(self) -> int:
        return max(1, int(self.resources["cpu"]))

    def where(self, key: str) -> str:
        """``file:line`` for a dotted path of the YAML (``file`` if unknown)."""
        return SpecFile(self.source, self.path.parent, self.lines).where(key)


def _declared(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields a class declares in its own body (the ones :class:`Spec` resolves)."""
    return tuple(vars(cls).get("__annotations__", {}))


# --------------------------------------------------------------------------------------
# Trial parameters: fixed, top-level steps/checkpoint/batch_size/pretrain, grid, sample
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Parameters:
    fixed: dict[str, Any]              # flat dotted key -> value
    origins: dict[str, str]            # fixed key -> YAML path that gave it
    grid: dict[str, list[dict[str, Any]]]
    control_grid: dict[str, list[dict[str, Any]]]
    sample: SampleSpec | None


def read_parameters(file: SpecFile, raw: Mapping, control: str) -> Parameters:
    """The parameter sections, flattened and checked; each key given in one place."""
    fixed, origins = _parse_fixed(file, raw.get("fixed"))
    _add_top_level_params(file, raw, fixed, origins)
    grid = _parse_grid(file, raw.get("grid"))
    sample = _parse_sample(file, raw.get("sample"))
    _check_overlaps(file, fixed, origins, grid, sample)
    control_grid = _parse_grid(file, raw.get("control_grid"), section="control_grid")
    if control_grid and control != arms.CONTROL.switch[1]:
        raise file.fail("control_grid", "extra cross-entropy arms need control: mle; set control: mle "
                                        "or remove control_grid")
    varied = {leaf for values in grid.values() for a in values for leaf in a}
    varied |= set(sample.leaves() if sample is not None else ())
    if fixed.get("pretrain.iters") is not None and fixed.get("checkpoint", "auto") != "auto" \
            and "checkpoint" not in varied:
        raise file.fail(origins["pretrain.iters"], "pretrain is only used with checkpoint: auto (the "
                                                   "checkpoint is a file here); remove it")
    if "steps" not in fixed and "steps" not in varied:
        raise SpecError(f"{file.source}: steps: missing required key (reward-tuning steps, an integer "
                        f">= 1; or vary it under grid:)")
    return Parameters(fixed, origins, grid, control_grid, sample)


def check_study_size(file: SpecFile, top: StudyFile, parameters: Parameters) -> int:
    """The most trials the spec describes, from counts alone (nothing is built yet); a
    :class:`SpecError` above ``max_trials``, so that no spec can make a launch or a dry
    run take unbounded time or memory. Counted before duplicate points are removed:
    grid points x samples x seeds x arms (a reward arm, with ``control: mle`` its control
    and each ``control_grid`` variant, with ``reference: noop`` the no-op)."""
    points = math.prod(len(values) for values in parameters.grid.values())
    samples = parameters.sample.num_samples if parameters.sample is not None else 1
    seeds = top.seeds.max if isinstance(top.seeds, SequentialSeeds) else len(top.seeds)
    variants = math.prod(len(values) for values in parameters.control_grid.values()) \
        if parameters.control_grid else 0
    per_point = sum(1 + (variants if a.variant_label else 0) for a in arms.KINDS.values() if a.enabled(top))
    bound = points * samples * seeds * per_point
    if bound > top.max_trials:
        def count(n: int, what: str) -> str:
            what = what if n != 1 else what[:-1]
            return f"{n:,} {what}" if n < 10 ** 15 else f"~10^{int(n.bit_length() * 0.30103)} {what}"

        raise file.fail("max_trials", f"the spec describes up to {count(bound, 'trials')} ("
                                      f"{count(points, 'grid points')} x {count(samples, 'samples')} x "
                                      f"{count(seeds, 'seeds')} x {per_point} arms), above max_trials {top.max_trials:,}; "
                                      f"shrink the grid, sample.num_samples or seeds, or raise max_trials: N in "
                                      f"the spec (docs/search_spaces.md, Limits)")
    return bound


def _check_param(file: SpecFile, key: str, at: str, value: Any) -> Any:
    """Validate one leaf value of parameter ``key`` given at YAML path ``at``."""
    value = file.checked(at, PARAMS[key].check, value)
    if key == "checkpoint" and value != "auto" and not is_url(value):   # a URL is fetched at launch
        path = file.resolve(value)
        if not path.is_file():
            raise file.fail(at, f"checkpoint file {value!r} not found (looked for {path}); expected "
                                f"auto, an existing checkpoint file or an http(s) URL")
        problem = checkpoint_problem(path)
        if problem:
            raise file.fail(at, f"checkpoint file {value!r} {problem}; expected a checkpoint saved by "
                                f"torch.save (MMEngine's .pth)")
    if key == "class_weights.counts" and isinstance(value, str):
        path = file.resolve(value)
        if not path.is_file():
            raise file.fail(at, f"class counts file {value!r} not found (looked for {path}); expected "
                                f"a .json written by `rewardsweep class-weights` or a list of counts")
    return value


def _unknown_param(file: SpecFile, at: str, key: str) -> SpecError:
    return file.fail(at, f"unknown parameter {key!r}; expected one of the trial-config keys "
                         f"(see docs/search_spaces.md){did_you_mean(key, PARAMS)}")


def _group_keys(group: str) -> str:
    return ", ".join(k.split(".", 1)[1] for k in PARAMS if k.startswith(group + "."))


def _flatten_value(file: SpecFile, key: str, at: str, value: Any) -> dict[str, Any]:
    """A parameter assignment ``key: value`` -> {leaf: value}. Groups take mappings;
    ``class_weights: null`` (or false) switches class weights off."""
    if key in GROUPS:
        if key == "class_weights" and (value is None or value is False):
            return {"class_weights": False}
        if not isinstance(value, Mapping):
            if key == "class_weights":
                raise file.fail(at, f"{as_written(value)} is not allowed; expected null or false (off) "
                                    f"or a mapping {{counts: ..., smooth: ...}}")
            raise file.fail(at, f"{as_written(value)} is not a mapping; expected a mapping of {_group_keys(key)}")
        out: dict[str, Any] = {"class_weights": True} if key == "class_weights" else {}
        for sub, subvalue in value.items():
            leaf, sub_at = f"{key}.{sub}", f"{at}.{sub}"
            if leaf not in PARAMS:
                raise _unknown_param(file, sub_at, leaf)
            out[leaf] = _check_param(file, leaf, sub_at, subvalue)
        return out
    if key not in PARAMS:
        raise _unknown_param(file, at, key)
    out = {key: _check_param(file, key, at, value)}
    if key == "class_weights.counts" and out[key] is not None:
        out["class_weights"] = True
    return out


def _flatten_values(file: SpecFile, key: str, at: str, values: list) -> list[dict[str, Any]]:
    """The values listed for ``key`` (grid or choice), flattened; a repeat is an error."""
    assignments: list[dict[str, Any]] = []
    for i, value in enumerate(values):
        assignment = _flatten_value(file, key, f"{at}[{i}]", value)
        if assignment in assignments:
            raise file.fail(f"{at}[{i}]", f"value {as_written(value)} is listed twice")
        assignments.append(assignment)
    return assignments


def _parse_fixed(file: SpecFile, fixed: Any) -> tuple[dict[str, Any], dict[str, str]]:
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


def _add_top_level_params(file: SpecFile, raw: Mapping, fixed: dict[str, Any],
                          origins: dict[str, str]) -> None:
    """steps, checkpoint, batch_size and pretrain may also be given at the top level (once)."""
    for key in TOP_LEVEL_PARAMS:
        if raw.get(key) is None:
            continue
        for leaf, value in _flatten_value(file, key, key, raw[key]).items():
            if leaf in fixed:
                raise file.fail(key, f"given both at top level and at {origins[leaf]} (line "
                                     f"{file.lines.get(origins[leaf], '?')}); give it once")
            fixed[leaf], origins[leaf] = value, leaf if leaf == key else f"{key}.{leaf.split('.', 1)[1]}"


def _parse_grid(file: SpecFile, grid: Any, section: str = "grid") -> dict[str, list[dict[str, Any]]]:
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
        if key not in PARAMS:
            raise _unknown_param(file, at, key)
        if section == "control_grid" and key.split(".")[0] not in CONTROL_GRID_GROUPS:
            raise file.fail(at, f"{key!r} cannot vary in the control arm; expected "
                                f"{' or '.join(CONTROL_GRID_GROUPS)} keys (the cross-entropy arm's own "
                                f"learning rate and optimizer)")
        if not isinstance(values, list):
            raise file.fail(at, f"{as_written(values)} is not a list; expected a non-empty list of values "
                                f"(a single value belongs under fixed:)")
        if not values:
            raise file.fail(at, "empty list; expected at least one value")
        out[key] = _flatten_values(file, key, at, values)
    return out


def _distributions(value: Any) -> Mapping:
    if isinstance(value, Mapping) and value:
        return value
    raise Invalid(f"{as_written(value)} is not allowed; expected a non-empty mapping of dotted keys to "
                  f"{{choice: [...]}}, {{uniform: [lo, hi]}} or {{loguniform: [lo, hi]}}")


class _Sample(_Strict):
    num_samples: checked(int_at_least(1)) = Field(..., description="draws")
    seed: checked(int_at_least(0)) = Field(0, description="seed of the draws (a top-up keeps them)")
    params: checked(_distributions) = Field(..., description="dotted key -> {choice|uniform|loguniform: ...}")


def _parse_sample(file: SpecFile, sample: Any) -> SampleSpec | None:
    """sample -> SampleSpec (num_samples, seed, {key: distribution})."""
    if sample is None:
        return None
    try:
        read = _Sample.model_validate(sample)
    except ValidationError as exc:
        raise file.from_validation(exc, _Sample, prefix="sample.") from None
    out = {str(key): _parse_distribution(file, str(key), dist) for key, dist in read.params.items()}
    return SampleSpec(num_samples=read.num_samples, seed=read.seed, params=out)


def _parse_distribution(file: SpecFile, key: str, dist: Any) -> tuple[str, Any]:
    """``{choice: [...]}`` -> ("choice", [assignments]); uniform/loguniform -> (kind, (lo, hi))."""
    at = f"sample.params.{key}"
    if key not in PARAMS:
        raise _unknown_param(file, at, key)
    if not isinstance(dist, Mapping) or len(dist) != 1:
        raise file.fail(at, f"{as_written(dist)} is not a distribution; expected exactly one of "
                            f"{{choice: [...]}}, {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}")
    (kind, arg), = dist.items()
    if kind not in DISTRIBUTIONS:
        raise file.fail(f"{at}.{kind}", f"unknown distribution {kind!r}; expected one of "
                                        f"{', '.join(DISTRIBUTIONS)}{did_you_mean(str(kind), DISTRIBUTIONS)}")
    at = f"{at}.{kind}"
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise file.fail(at, f"{as_written(arg)} is not allowed; expected a non-empty list of values")
        return "choice", _flatten_values(file, key, at, arg)
    if PARAMS[key].kind != "real":
        takes = "integers" if PARAMS[key].kind == "int" else "fixed values"
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


def _check_overlaps(file: SpecFile, fixed: dict[str, Any], origins: dict[str, str],
                    grid: dict[str, list[dict[str, Any]]], sample: SampleSpec | None) -> None:
    """A key given in two places, one of which would silently never be used, is an error."""
    varied: list[tuple[str, list[dict[str, Any]]]] = [(f"grid.{key}", values) for key, values in grid.items()]
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
