"""The trial config's schema: every key a study may set, its default, check and help.

``TrialParams`` (the reward part from :class:`rewardsweep.reward.settings.RewardSettings`,
plus the learning rate, optimizer, budget and start) is what ``fixed``/``grid``/``sample``
of a spec may set; ``TrialConfig`` adds what a run is given (ids, arm, seed, paths).
Everything else is derived from these declarations:

- ``TRIAL_DEFAULTS`` / :func:`default` / :func:`with_defaults`: the defaults;
- ``PARAMS``: the dotted keys a spec may set (their checks, defaults, help; docs table);
- :meth:`TrialParams.ignored_keys`: the keys the chosen settings ignore (set to None
  before a configuration is hashed, so points differing only there run once).

A new key is one field here (or in ``reward/settings.py`` for the reward part).
"""

import copy
import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from rewardsweep.checks import (
    Invalid,
    boolean,
    checked,
    first_error,
    int_at_least,
    number_between,
    one_of,
    or_null,
    text,
)
from rewardsweep.config.schedules import SCHEDULES
from rewardsweep.errors import ConfigError
from rewardsweep.study import arms
from rewardsweep.reward.settings import REWARD_KEYS, RewardSettings, SettingsGroup

__all__ = ["LR", "Optimizer", "Pretrain", "TrialParams", "TrialConfig", "Param", "PARAMS", "GROUPS",
           "RUNTIME_FIELDS", "ID_KEYS_0_2", "id_stability_problems",
           "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "NO_REWARD_PART", "TRIAL_DEFAULTS", "default", "with_defaults", "validate_trial_config",
           "trial_view"]

OPTIMIZERS = ("SGD", "Adam", "AdamW")
# Numeric precision of a trial's training step (runners/precision.py); null is fp32.
PRECISIONS = ("fp32", "amp", "bf16")


class LR(SettingsGroup):
    start: checked(number_between(0.0, lo_open=True)) = Field(1e-4, description="learning rate at step 0, `> 0`")
    end: checked(number_between(0.0)) = Field(1e-6, description="learning rate at the last step, `0 <= end <= start` (exponential needs end > 0)")
    schedule: checked(one_of(SCHEDULES)) = Field("poly", description="`poly`, `cosine`, `linear`, `exponential`, `constant` (keeps `lr.start`; `lr.end` is ignored)")
    power: checked(number_between(0.0, lo_open=True)) = Field(0.9, description="poly only")

    @model_validator(mode="after")
    def _decays(self) -> "LR":
        if self.schedule != "constant" and self.end > self.start:
            raise Invalid(f"lr.end {self.end:g} is above lr.start {self.start:g}; expected end <= start",
                          key="lr.end", also=("lr.start", "lr.schedule"))
        if self.schedule == "exponential" and self.end <= 0:
            raise Invalid("the exponential schedule needs lr.end > 0", key="lr.end", also=("lr.schedule",))
        return self


class Optimizer(SettingsGroup):
    type: checked(one_of(OPTIMIZERS)) = Field("SGD", description="`SGD`, `Adam`, `AdamW`")
    momentum: checked(number_between(0.0, 1.0, hi_open=True)) = Field(0.9, description="SGD only")
    weight_decay: checked(number_between(0.0)) = Field(0.0, description="`>= 0`. While tuning, a 5e-4 pull is ~480x the expected policy gradient (docs/method.md)")


class Pretrain(SettingsGroup):
    iters: checked(or_null(int_at_least(1), "null (the preset's default)")) = Field(
        None, description="MLE pretraining iterations of the `auto` start checkpoint (`null`: the preset's default)")


class TrialParams(RewardSettings):
    """What a study may set under ``fixed``, ``grid`` or ``sample``."""

    # control_grid: a spec's control_grid may vary the group (the cross-entropy arm's own)
    lr: LR = Field(LR(), description="learning-rate schedule", json_schema_extra={"control_grid": True})
    optimizer: Optimizer = Field(Optimizer(), description="optimizer", json_schema_extra={"control_grid": True})
    steps: checked(int_at_least(1)) = Field(100, description="reward-tuning iterations per trial, `>= 1` (required in a spec)")
    checkpoint: checked(text("auto, a path to a .pth file or an http(s) URL")) = Field(
        "auto", description="`auto` (MLE-pretrain the model once, cached and shared), an existing checkpoint file (relative to the spec's folder) or an http(s) URL such as MMSeg's model zoo (downloaded once into the cache, checked against the sha256 prefix in its file name)")
    batch_size: checked(int_at_least(1)) = Field(8, description="images per step")
    pretrain: Pretrain | None = Field(None, description="MLE pretraining of checkpoint auto")
    precision: checked(or_null(one_of(PRECISIONS), "null (fp32)")) = Field(
        None, description="`fp32` (null), `amp` (float16 autocast with loss scaling; GPU only) or `bf16` "
                          "(bfloat16 autocast). The reward's resize, softmax, sampling and mIoU stay in fp32; "
                          "evaluation runs in fp32. The control shares it")

    def ignored_keys(self) -> tuple[str, ...]:
        """Dotted keys whose value has no effect under these settings (the reward part's, and
        the schedule power, SGD momentum and pretraining when not used)."""
        ignored = list(super().ignored_keys())
        if self.lr.schedule != "poly":
            ignored.append("lr.power")
        if self.optimizer.type != "SGD":
            ignored.append("optimizer.momentum")
        if self.checkpoint != "auto":
            ignored.append("pretrain.iters")
        return tuple(ignored)


class _TrialConfig(TrialParams):
    """A whole trial config (``docs/architecture.md``): the parameters and what a run is given
    (the ids of its paired arms, ``control_id``, ``reference_id``, ...: one per ``study.arms``
    kind that pairs, added below)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    study: str | None = None
    study_dir: str | None = None
    config_id: str | None = None
    arm: checked(one_of(arms.NAMES)) = Field("reward", description="reward, mle (control) or noop (study.arms)")
    seed: checked(int_at_least(0)) = Field(0, description="the trial's seed")
    model: str | None = None
    data_root: str | None = None
    start: dict | None = None
    eval_every: checked(int_at_least(1)) = Field(50, description="evaluate every N steps")
    threads: checked(int_at_least(1)) = Field(1, description="torch intra-op threads")
    workers: checked(or_null(int_at_least(0), "null (the rule)")) = Field(
        None, description="loader worker processes (null: runners.loaders.loader_workers' rule)")
    cudnn_benchmark: checked(boolean) = Field(True, description="cuDNN picks the fastest algorithms (GPU only)")
    diagnostics_every: checked(int_at_least(0)) = Field(
        20, description="treatment probe interval in steps (0: off)")
    debug: dict = Field({}, description="test hooks (docs/architecture.md)")
    checkpoints: checked(one_of(("none", "final"))) = Field(
        "none", description="final: keep the trial's final weights in <study>/checkpoints/")
    params: dict | None = None
    runtime: dict | None = None  # where it ran (set by the sweep: node id, pid, ...)

    def reward_part(self) -> dict[str, Any]:
        """The reward keys and ``batch_size`` as plain data: what an MMSeg reward head's
        config holds (``runners.trial.reward_model_config``; the head validates it again)."""
        return {**self.model_dump(include=set(REWARD_KEYS)), "batch_size": self.batch_size}

    @model_validator(mode="before")
    @classmethod
    def _control_arms_have_no_reward_part(cls, data: Any) -> Any:
        if isinstance(data, dict) and arms.trains(data.get("arm", "reward")) != "reward":
            data = {k: v for k, v in data.items() if k not in REWARD_KEYS}
        return data


# the id field of each paired arm kind (study.arms), e.g. control_id: a config id or None
TrialConfig = create_model("TrialConfig", __base__=_TrialConfig, __module__=__name__,
                           **{link: (str | None, None) for link in arms.links()})


def _nulled(model: type[BaseModel]) -> dict[str, Any]:
    """Every key of ``model`` as None (groups as a mapping of Nones; optional groups None)."""
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        if f.exclude:
            continue
        sub = f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None
        out[name] = _nulled(sub) if sub is not None else None
    return out


# What a cross-entropy control (or the no-op reference) holds for the reward keys: nothing,
# and the auxiliary head keeps its cross-entropy (the MMSeg model as pretrained).
NO_REWARD_PART: dict[str, Any] = {**_nulled(RewardSettings), "aux_head": "mle"}


# --------------------------------------------------------------------------------------
# Derived: defaults and the dotted keys a spec may set
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Config ids: which keys a configuration's id hashes (sweep.expand.config_hash)
# --------------------------------------------------------------------------------------

# Fields of a trial config that do not define the configuration (never hashed): the ids
# linking paired arms (study.arms) and what a run is given.
RUNTIME_FIELDS = ("seed", "study_dir", "start", "threads", "config_id", *arms.links(), "debug",
                  "params", "diagnostics_every", "checkpoints", "workers", "cudnn_benchmark")

# The keys a config id hashed in 0.2.0 (frozen: never edit what 0.2.0 hashed), a group with
# the sub-keys it hashed (the groups a 0.2.0 config held: baseline, lr, optimizer, and
# pretrain {iters} and class_weights {counts, smooth} when set). THE RULE for a key added
# later, a top-level key, a sub-key of a group or a key of a new group alike: it is hashed
# only when it has a value, so it must default to None. A non-None default would be hashed
# in every configuration (every one that sets its group) and change their config ids: no
# study folder would resume. :func:`id_stability_problems` checks it (tests/test_upgrade.py
# runs it on the schema); ``sweep.expand._id_view`` applies it.
ID_KEYS_0_2: dict[str, tuple[str, ...] | None] = {
    "study": None, "arm": None, "model": None, "data_root": None, "checkpoint": None,
    "pretrain": ("iters",), "steps": None, "eval_every": None, "batch_size": None, "estimator": None,
    "samples": None, "baseline": ("kind", "coef", "decay"), "normalize_advantage": None,
    "lr": ("start", "end", "schedule", "power"), "optimizer": ("type", "momentum", "weight_decay"),
    "class_weights": ("counts", "smooth"), "aux_head": None,
}


def _group_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a group field (``Baseline``, ``Pretrain | None``, ...), else None."""
    return next((c for c in (typing.get_args(annotation) or (annotation,))
                 if isinstance(c, type) and issubclass(c, BaseModel)), None)


def id_stability_problems(model: type[BaseModel]) -> list[str]:
    """The keys of ``model`` (a trial-config schema) that break the id rule above: hashed
    (not a run-time field), newer than 0.2.0, and not None by default; inside every group
    too (a new group's keys, and a sub-key added to a group of 0.2.0)."""
    problems = []
    for name, f in model.model_fields.items():
        if name in RUNTIME_FIELDS or f.exclude:
            continue
        value = f.get_default(call_default_factory=True)
        group = _group_model(f.annotation)
        if group is None:
            if name not in ID_KEYS_0_2 and value is not None:
                problems.append(f"{name} (default {value!r})")
            continue
        known = ID_KEYS_0_2.get(name, ())
        if known is None:
            problems.append(f"{name} (a group hashed whole: list the sub-keys 0.2.0 hashed in ID_KEYS_0_2)")
            continue
        # a sub-key's default: the group default's value, else the sub-model's own (what a spec fills in)
        subs = {k: sf for k, sf in group.model_fields.items() if not sf.exclude and k not in known}
        given = value.model_dump() if isinstance(value, BaseModel) else {}
        for k, sf in subs.items():
            if k not in given and sf.is_required():
                problems.append(f"{name}.{k} (required)")
                continue
            sub_default = given.get(k, sf.get_default(call_default_factory=True))
            if sub_default is not None:
                problems.append(f"{name}.{k} (default {sub_default!r})")
    return problems


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    out = {}
    for name, f in model.model_fields.items():
        if f.exclude:
            continue
        value = f.get_default(call_default_factory=True)
        out[name] = value.model_dump(exclude_none=False) if isinstance(value, BaseModel) else copy.deepcopy(value)
    return out


TRIAL_DEFAULTS: dict[str, Any] = {k: v for k, v in _defaults(TrialConfig).items()
                                  if k not in ("study", "study_dir", "config_id", *arms.links(),
                                               "model", "start", "params", "pretrain",
                                               "checkpoint")}


def default(key: str) -> Any:
    """The default of a dotted key, e.g. ``default("baseline.kind") == "sample_loo"``."""
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


def trial_view(config: dict[str, Any]) -> TrialConfig:
    """``config``'s keys as attributes, *not* checked (``model_construct``), for code that
    carries a config without owning it: the Ray worker names a trial and its record from
    it, while a config that fails the schema is the trial's to record as failed. Unset keys
    read as their defaults; groups stay as given."""
    return TrialConfig.model_construct(**config)


def validate_trial_config(config: dict[str, Any], source: str = "trial config",
                          num_classes: int | None = None) -> TrialConfig:
    """The whole config checked (one-line :class:`ConfigError` ``"source: key: message"``)."""
    try:
        return TrialConfig.model_validate(config, context={"num_classes": num_classes,
                                                           "batch_size": config.get("batch_size")})
    except ValidationError as exc:
        key, message = first_error(exc, TrialConfig)
        raise ConfigError(f"{source}: {key}: {message}" if key else f"{source}: {message}", key=key) from None


@dataclasses.dataclass(frozen=True)
class Param:
    """One dotted key a spec may set: its check, default, help, and whether it is real-valued
    (uniform/loguniform may draw it) or an integer (choice only)."""

    key: str
    check: Any
    default: Any
    help: str
    kind: str  # "real" | "int" | "value"


def _params(model: type[BaseModel], prefix: str = "") -> dict[str, Param]:
    out: dict[str, Param] = {}
    for name, f in model.model_fields.items():
        if f.exclude or (model is TrialParams and name not in TrialParams.model_fields):
            continue
        key = f"{prefix}{name}"
        sub = _group_model(f.annotation)
        if sub is not None:
            out[key] = Param(key, None, None, f.description or "", "group")
            out.update(_params(sub, f"{key}."))
            continue
        check = next(m.func for m in f.metadata if hasattr(m, "func"))
        expected = getattr(check, "expected", "")
        kind = "real" if expected.startswith("a number") else "int" if expected.startswith("an integer") else "value"
        out[key] = Param(key, check, f.get_default(call_default_factory=True), f.description or "", kind)
    return out


# Every dotted key a spec may set, in the schema's order (tables show them in this order);
# groups (baseline, lr, ...) take a mapping of their keys as one value.
PARAMS: dict[str, Param] = _params(TrialParams)
GROUPS: tuple[str, ...] = tuple(k for k, p in PARAMS.items() if p.kind == "group")
