"""The reward part of a trial config: its schema, checked once (``docs/architecture.md``).

``RewardSettings`` declares the keys ``estimator``, ``samples``, ``baseline.{kind, coef,
decay}``, ``normalize_advantage``, ``class_weights.{counts, smooth}`` and ``aux_head``:
default, check and help, each in one place. The trial-config schema
(:mod:`rewardsweep.config.trial`) extends it, so the spec validator, a trial and the docs
table all read the same declaration. Baseline kinds and the rules between keys come from
the registry :data:`rewardsweep.reward.baselines.KINDS`.

Which keys matter (everything else is accepted and reported by ``ignored_keys``, so a
sweep can run a grid point that only differs in an ignored key once): a baseline
hyperparameter is used only by the kinds that list it (``coef``: batch_loo, ``decay``:
ema); ``reward_weighted_ce`` takes the kinds marked ``weighted_ce`` (beta = coef under
batch_loo, else 0) and ignores ``samples`` and ``normalize_advantage``.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from rewardsweep.checks import Invalid, boolean, checked, first_error, int_at_least, number_between, one_of, or_null
from rewardsweep.errors import ConfigError
from rewardsweep.formatting import as_written
from rewardsweep.reward.baselines import KINDS
from rewardsweep.reward.class_weights import (
    class_weight_values,
    class_weights_from_counts,
    load_counts,
    validate_counts,
    validate_smooth,
)

__all__ = ["AUX_HEADS", "BASELINES", "ESTIMATORS", "Baseline", "ClassWeights", "RewardSettings",
           "REWARD_KEYS"]

ESTIMATORS = ("reinforce", "reward_weighted_ce")
BASELINES = tuple(KINDS)
AUX_HEADS = ("off", "mle", "reward")


class _Group(BaseModel):
    """A group of keys: unknown ones are errors, null means "the default"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


def _kinds_help() -> str:
    """The docs' line for ``baseline.kind``, from the registry."""
    names = ", ".join(f"`{n}`" + (f" (needs `samples >= {k.min_samples}`)" if k.min_samples > 1 else "")
                      for n, k in KINDS.items())
    rwce = " or ".join(f"`{n}` (beta = {'coef' if 'coef' in k.uses else '0'})" for n, k in KINDS.items() if k.weighted_ce)
    return f"{names}. `reward_weighted_ce` takes only {rwce}"


class Baseline(_Group):
    kind: checked(one_of(BASELINES)) = Field("sample_loo", description=_kinds_help())
    coef: checked(number_between(0.0)) = Field(1.0, description="beta `>= 0`: used by `batch_loo` only (for both estimators)")
    decay: checked(number_between(0.0, 1.0, lo_open=True, hi_open=True)) = Field(0.9, description="EMA decay in (0, 1): used by `ema` (reinforce) only")


def _class_counts(value: Any) -> Any:
    """A non-empty list of per-class pixel counts, or a .json path (read by the model)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(
            not isinstance(v, bool) and isinstance(v, (int, float)) and v == v and abs(v) != float("inf")
            and v >= 0 for v in value):
        return [int(v) if float(v).is_integer() else float(v) for v in value]
    raise Invalid(f"{as_written(value)} is not class counts; expected a non-empty list of per-class "
                  f"pixel counts (numbers >= 0) or a .json file written by `rewardsweep class-weights`")


_class_counts.expected = "a list of per-class pixel counts, or a .json file"  # type: ignore[attr-defined]


class ClassWeights(BaseModel):
    """Per-class weights from pixel counts (``docs/method.md``); a counts file is read here."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    counts: checked(_class_counts) = Field(..., description="per-class ground-truth pixel counts (a list), or a `.json` written by `rewardsweep class-weights` (relative to the spec's folder). Giving counts turns class weights on")
    smooth: checked(or_null(number_between(0.0), "null (a counts file's own)")) = Field(
        None, description="smoothing `s >= 0`", json_schema_extra={"spec_default": 0.05})
    path: str | None = Field(None, exclude=True)  # where the counts came from, when a file

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            raise Invalid(f"{as_written(data)} is not allowed; expected null (off) or a mapping "
                          f"{{counts: ..., smooth: ...}}")
        data = {k: v for k, v in data.items() if v is not None}
        if "counts" not in data:
            raise Invalid("class weights are on but class_weights.counts is not given; expected counts: "
                          "a list of per-class pixel counts or a .json file",
                          key="class_weights.counts", also=("class_weights", "class_weights.smooth"))
        raw = data["counts"]
        if not isinstance(raw, str):
            return data
        context = info.context or {}
        path = Path(raw)
        if not path.is_absolute() and context.get("base_dir") is not None:
            path = Path(context["base_dir"]) / path
        try:
            loaded = load_counts(path)
        except ConfigError as exc:
            raise Invalid(str(exc), key="class_weights.counts") from None
        smooth = data.get("smooth", loaded.smooth)
        return {**data, "counts": list(loaded.counts), "smooth": smooth, "path": str(path)}

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "ClassWeights":
        try:
            validate_counts(self.counts, where="class_weights.counts")
        except ConfigError as exc:
            raise Invalid(str(exc).split(": ", 1)[-1], key="class_weights.counts") from None
        num_classes = (info.context or {}).get("num_classes")
        if num_classes is not None and len(self.counts) != num_classes:
            raise Invalid(f"expected {num_classes} counts (one per class), got {len(self.counts)}",
                          key="class_weights.counts")
        if self.smooth is None:
            raise Invalid("missing; expected a number >= 0 (e.g. 0.05)", key="class_weights.smooth")
        try:
            validate_smooth(self.smooth)
            class_weight_values(self.counts, self.smooth)  # a zero count with zero smoothing
        except ConfigError as exc:
            message = str(exc)
            key = "class_weights.smooth" if message.startswith("class_weights.smooth") else "class_weights.counts"
            raise Invalid(message.split(": ", 1)[-1] if message.startswith("class_weights.") else message,
                          key=key) from None
        return self


class RewardSettings(_Group):
    """Validated reward settings of one trial. Build it with :meth:`from_config`."""

    estimator: checked(one_of(ESTIMATORS)) = Field("reinforce", description="`reinforce` (policy gradient) or `reward_weighted_ce` (the study's re-weighted cross-entropy)")
    samples: checked(int_at_least(1)) = Field(2, description="k labellings per image (reinforce), integer `>= 1`")
    baseline: Baseline = Field(Baseline(), description="variance-reduction baseline")
    normalize_advantage: checked(boolean) = Field(True, description="divide the advantage by its batch std (reinforce only). Off, the policy gradient is ~1/3300 of cross-entropy's at the same lr (docs/method.md)")
    class_weights: ClassWeights | None = Field(None, description="`null`/`false` (off) or a mapping `{counts, smooth}` (on)")
    aux_head: checked(one_of(AUX_HEADS)) = Field("off", description="`off`, `mle` (keep its cross-entropy: then most of the update is that cross-entropy) or `reward`")

    @model_validator(mode="after")
    def _combinations(self, info: ValidationInfo) -> "RewardSettings":
        kind, spec = self.baseline.kind, KINDS[self.baseline.kind]
        if self.estimator == "reinforce" and self.samples < spec.min_samples:
            raise Invalid(f"{kind!r} needs several samples per image; expected samples >= "
                          f"{spec.min_samples}, got samples={self.samples}", key="baseline.kind", also=("samples",))
        if self.estimator == "reward_weighted_ce" and not spec.weighted_ce:
            allowed = " or ".join(f"{name} (beta = {'coef' if 'coef' in k.uses else '0'})"
                                  for name, k in KINDS.items() if k.weighted_ce)
            raise Invalid(f"estimator 'reward_weighted_ce' got baseline {kind!r}; expected {allowed}",
                          key="baseline.kind", also=("estimator",))
        batch_size = getattr(self, "batch_size", None) or (info.context or {}).get("batch_size")
        if batch_size is not None and batch_size < spec.min_batch:
            raise Invalid(f"{kind!r} needs other images in the batch; expected batch_size >= "
                          f"{spec.min_batch}, got batch_size={batch_size}", key="baseline.kind",
                          also=("batch_size",))
        return self

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_config(cls, config: dict, source: str = "trial config", batch_size: int | None = None,
                    num_classes: int | None = None, base_dir: str | Path | None = None) -> "RewardSettings":
        """Validate the reward keys of ``config`` (other keys are not looked at; missing or null
        keys take the defaults; ``class_weights: null`` means no class weights).

        ``batch_size`` and ``num_classes`` default to ``config["batch_size"]`` and the length
        of ``config["start"]["class_names"]`` when present; checks that need them are skipped
        when they are unknown. A relative ``class_weights.counts`` path is read relative to
        ``base_dir`` (default: the working directory), here, so a missing or malformed file
        fails before training. Raises :class:`ConfigError` ``"source: key: message"``.
        """
        if not isinstance(config, dict):
            raise ConfigError(f"{source}: expected a mapping of trial settings, got {type(config).__name__}")
        if batch_size is None and isinstance(config.get("batch_size"), int):
            batch_size = config["batch_size"]
        if num_classes is None:
            start = config.get("start")
            names = start.get("class_names") if isinstance(start, dict) else None
            num_classes = len(names) if isinstance(names, list) and names else None
        reward = {key: config[key] for key in REWARD_KEYS if key in config}
        context = {"batch_size": batch_size, "num_classes": num_classes, "base_dir": base_dir}
        try:
            return cls.model_validate(reward, context=context)
        except ValidationError as exc:
            key, message = first_error(exc, cls)
            raise ConfigError(f"{source}: {key}: {message}" if key else f"{source}: {message}", key=key) from None

    # ------------------------------------------------------------------ using
    @property
    def baseline_kind(self) -> str:
        return self.baseline.kind

    @property
    def baseline_coef(self) -> float:
        return self.baseline.coef

    @property
    def baseline_decay(self) -> float:
        return self.baseline.decay

    @property
    def class_weights_counts(self) -> tuple[float, ...] | None:
        return None if self.class_weights is None else tuple(float(c) for c in self.class_weights.counts)

    @property
    def class_weights_smooth(self) -> float | None:
        return None if self.class_weights is None else self.class_weights.smooth

    @property
    def class_weights_path(self) -> str | None:
        return None if self.class_weights is None else self.class_weights.path

    @property
    def beta(self) -> float:
        """beta of ``reward_weighted_ce`` (coef under a kind that uses it, else 0)."""
        return self.baseline.coef if "coef" in KINDS[self.baseline.kind].uses else 0.0

    def baseline_params(self) -> dict[str, Any]:
        """The hyperparameters of the chosen kind (what ``KINDS[kind]`` reads)."""
        return {name: getattr(self.baseline, name) for name in KINDS[self.baseline.kind].uses}

    def class_weight_tensor(self):
        """The per-class weights (float32 tensor ``[C]``) or None."""
        if self.class_weights is None:
            return None
        return class_weights_from_counts(self.class_weights_counts, self.class_weights.smooth)

    def ignored_keys(self) -> tuple[str, ...]:
        """Dotted config keys whose value has no effect under these settings."""
        ignored = ["samples", "normalize_advantage"] if self.estimator == "reward_weighted_ce" else []
        uses = KINDS[self.baseline.kind].uses
        ignored += [f"baseline.{name}" for name in Baseline.model_fields if name != "kind" and name not in uses]
        return tuple(ignored)

    def to_dict(self) -> dict:
        """A JSON-able dict of the settings (flat field names)."""
        return {"estimator": self.estimator, "samples": self.samples, "baseline_kind": self.baseline.kind,
                "baseline_coef": self.baseline.coef, "baseline_decay": self.baseline.decay,
                "normalize_advantage": self.normalize_advantage,
                "class_weights_counts": None if self.class_weights is None else list(self.class_weights_counts),
                "class_weights_smooth": self.class_weights_smooth, "class_weights_path": self.class_weights_path,
                "aux_head": self.aux_head}


REWARD_KEYS = tuple(RewardSettings.model_fields)
