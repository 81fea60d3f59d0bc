"""The reward part of a trial config: its schema, checked once (``docs/architecture.md``).

``RewardSettings`` declares the keys ``estimator``, ``samples``, ``baseline.{kind, coef,
decay}``, ``normalize_advantage``, ``kl_coef``, ``kl_in``, ``entropy_coef``, ``clip_range``,
``epochs_per_batch``, ``class_weights.{counts, smooth}`` and ``aux_head``: default, check
and help, each in one place. The trial-config schema
(:mod:`rewardsweep.config.trial`) extends it, so the spec validator, a trial and the docs
table all read the same declaration. Baseline kinds and the rules between keys come from
the registry :data:`rewardsweep.reward.baselines.KINDS`.

Which keys matter (everything else is accepted and reported by ``ignored_keys``, so a
sweep can run a grid point that only differs in an ignored key once): a baseline
hyperparameter is used only by the kinds that list it (``coef``: batch_loo, ``decay``:
ema); ``reward_weighted_ce`` takes the kinds marked ``weighted_ce`` (beta = coef under
batch_loo, else 0) and ignores ``samples`` and ``normalize_advantage``.

Keys added after 0.2.0 (``kl_coef`` ... ``epochs_per_batch``) default to null, which means
"off" (today's behaviour): a config id hashes such a key only when it has a value
(``config/trial.py``, ``ID_KEYS_0_2``), and a value that does nothing (a coefficient 0, one
epoch, a clip range with one epoch, ``kl_in`` without a KL) is listed by ``ignored_keys``,
so it is hashed as null too and existing configurations keep their ids.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from rewardsweep.checks import Invalid, checked, did_you_mean, first_error, int_at_least, number_between, one_of, or_null
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

__all__ = ["AUX_HEADS", "BASELINES", "ESTIMATORS", "KL_IN", "Baseline", "ClassWeights", "RewardSettings",
           "REWARD_KEYS"]

ESTIMATORS = ("reinforce", "reward_weighted_ce")
BASELINES = tuple(KINDS)
AUX_HEADS = ("off", "mle", "reward")
KL_IN = ("loss", "reward")
_CENTRED = tuple(name for name, k in KINDS.items() if k.centred)


def _normalization(value: Any) -> Any:
    """``normalize_advantage``: true (the batch's std), false, or ``group``."""
    if isinstance(value, bool) or value == "group":
        return value
    raise Invalid(f"{as_written(value)} is not allowed; expected true (the batch's std), false or group "
                  f"(each image's std over its k samples){did_you_mean(value, ('group',), cutoff=0.5)}")


_normalization.expected = "true, false or group"  # type: ignore[attr-defined]


class SettingsGroup(BaseModel):
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


class Baseline(SettingsGroup):
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


class RewardSettings(SettingsGroup):
    """Validated reward settings of one trial. Build it with :meth:`from_config`."""

    estimator: checked(one_of(ESTIMATORS)) = Field("reinforce", description="`reinforce` (policy gradient) or `reward_weighted_ce` (the study's re-weighted cross-entropy)")
    samples: checked(int_at_least(1)) = Field(2, description="k labellings per image (reinforce), integer `>= 1`")
    baseline: Baseline = Field(Baseline(), description="variance-reduction baseline")
    normalize_advantage: checked(_normalization) = Field(True, description="`true`: divide the advantage by its batch std; `group`: by each image's std over its k rewards (GRPO; needs `samples >= 2` and a baseline that centres each image, " + " or ".join(f"`{n}`" for n in _CENTRED) + "); `false`: no scaling (reinforce only). Unscaled, the policy gradient is ~1/3300 of cross-entropy's at the same lr (docs/method.md)")
    kl_coef: checked(or_null(number_between(0.0), "null (off)")) = Field(None, description="beta of the KL to the start model, exact per pixel (docs/method.md); `null` or 0: off. The trial runs the frozen start model on each batch for its logits (train mode, the policy's dropout masks, no grad)")
    kl_in: checked(or_null(one_of(KL_IN), "null (loss)")) = Field(None, description="`loss` (or null: beta x the exact per-pixel KL, a loss term) or `reward` (beta x the sampled labelling's log-ratio subtracted from its reward; reinforce only)")
    entropy_coef: checked(or_null(number_between(0.0), "null (off)")) = Field(None, description="bonus for the exact per-pixel entropy of the policy (its coefficient, subtracted from the loss); `null` or 0: off")
    clip_range: checked(or_null(number_between(0.0, 1.0, lo_open=True, hi_open=True), "null (no clipping)")) = Field(None, description="eps of the clipped surrogate (PPO-style, per-pixel ratios) in (0, 1), e.g. 0.2; reinforce only, acts with `epochs_per_batch >= 2`")
    epochs_per_batch: checked(or_null(int_at_least(1), "null (1)")) = Field(None, description="optimizer steps on each batch of samples, the sampling policy fixed (reinforce only); `>= 2` needs `clip_range`. A trial's `steps` counts optimizer steps, so it draws a new batch every `epochs_per_batch` steps")
    class_weights: ClassWeights | None = Field(None, description="`null`/`false` (off) or a mapping `{counts, smooth}` (on)")
    aux_head: checked(one_of(AUX_HEADS)) = Field("off", description="`off`, `mle` (keep its cross-entropy: then most of the update is that cross-entropy) or `reward`")

    @model_validator(mode="after")
    def _combinations(self, info: ValidationInfo) -> "RewardSettings":
        kind, spec = self.baseline.kind, KINDS[self.baseline.kind]
        reinforce = self.estimator == "reinforce"
        if reinforce and self.normalize_advantage == "group":
            if self.samples < 2:
                raise Invalid(f"group normalisation divides by each image's std over its samples; expected "
                              f"samples >= 2, got samples={self.samples}", key="normalize_advantage",
                              also=("samples",))
            if not spec.centred:
                raise Invalid(f"group normalisation needs a baseline that centres each image; expected "
                              f"baseline.kind {' or '.join(_CENTRED)}, got {kind!r}", key="normalize_advantage",
                              also=("baseline.kind",))
        if reinforce and self.samples < spec.min_samples:
            raise Invalid(f"{kind!r} needs several samples per image; expected samples >= "
                          f"{spec.min_samples}, got samples={self.samples}", key="baseline.kind", also=("samples",))
        if self.estimator == "reward_weighted_ce" and not spec.weighted_ce:
            allowed = " or ".join(f"{name} (beta = {'coef' if 'coef' in k.uses else '0'})"
                                  for name, k in KINDS.items() if k.weighted_ce)
            raise Invalid(f"estimator 'reward_weighted_ce' got baseline {kind!r}; expected {allowed}",
                          key="baseline.kind", also=("estimator",))
        if not reinforce:
            for key in ("clip_range", "epochs_per_batch"):
                if getattr(self, key) is not None:
                    raise Invalid(f"the clipped surrogate needs sampled labellings; expected estimator "
                                  f"reinforce, got {self.estimator!r}", key=key, also=("estimator",))
            if self.kl_in == "reward" and self.kl_coef:
                raise Invalid(f"a KL penalty in the reward needs sampled labellings; expected estimator "
                              f"reinforce (or kl_in: loss), got {self.estimator!r}", key="kl_in",
                              also=("estimator", "kl_coef"))
        if self.epochs > 1 and self.clip_range is None:
            raise Invalid(f"several epochs on one batch need importance ratios; expected clip_range "
                          f"(e.g. 0.2) with epochs_per_batch={self.epochs}", key="epochs_per_batch",
                          also=("clip_range",))
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
    def advantage_scale(self) -> str:
        """What the advantage is divided by: ``none``, ``batch`` or ``group`` (``baselines.SCALES``)."""
        return {False: "none", True: "batch"}.get(self.normalize_advantage, self.normalize_advantage)

    @property
    def kl_loss_coef(self) -> float:
        """beta of the exact KL loss term (0 when off or when the KL goes into the reward)."""
        return 0.0 if self.kl_in == "reward" else float(self.kl_coef or 0.0)

    @property
    def kl_reward_coef(self) -> float:
        """beta of the KL penalty in the reward (0 unless ``kl_in: reward``)."""
        return float(self.kl_coef or 0.0) if self.kl_in == "reward" else 0.0

    @property
    def needs_reference(self) -> bool:
        """The objective needs the start model's logits (a KL term, in either form)."""
        return bool(self.kl_coef)

    @property
    def entropy_bonus(self) -> float:
        return float(self.entropy_coef or 0.0)

    @property
    def epochs(self) -> int:
        """Gradient steps per batch of samples (1 unless the clipped surrogate runs several)."""
        return self.epochs_per_batch or 1

    @property
    def clipped(self) -> bool:
        """The policy term is the clipped surrogate (several epochs with a clip range)."""
        return self.epochs > 1 and self.clip_range is not None

    @property
    def beta(self) -> float:
        """beta of ``reward_weighted_ce`` (coef under a kind that uses it, else 0)."""
        return self.baseline.coef if "coef" in KINDS[self.baseline.kind].uses else 0.0

    def plain(self) -> "RewardSettings":
        """These settings without the KL, the entropy bonus and the epochs (same estimator,
        samples, baseline, normalisation, class weights): the frozen start model's own
        objective, which the treatment probe runs only for its logits (``runners/probe.py``)."""
        off = dict(kl_coef=None, kl_in=None, entropy_coef=None, clip_range=None, epochs_per_batch=None)
        return self.model_copy(update=off)

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
        # keys newer than 0.2.0 whose value does the same as null (off): hashed as null
        if self.kl_coef == 0:
            ignored.append("kl_coef")
        if not self.kl_coef and self.kl_in is not None:
            ignored.append("kl_in")
        if self.entropy_coef == 0:
            ignored.append("entropy_coef")
        if self.epochs_per_batch == 1:
            ignored.append("epochs_per_batch")
        if self.epochs == 1 and self.clip_range is not None:
            ignored.append("clip_range")
        return tuple(ignored)

    def to_dict(self) -> dict:
        """A JSON-able dict of the settings (flat field names)."""
        return {"estimator": self.estimator, "samples": self.samples, "baseline_kind": self.baseline.kind,
                "baseline_coef": self.baseline.coef, "baseline_decay": self.baseline.decay,
                "normalize_advantage": self.normalize_advantage, "kl_coef": self.kl_coef, "kl_in": self.kl_in,
                "entropy_coef": self.entropy_coef, "clip_range": self.clip_range,
                "epochs_per_batch": self.epochs_per_batch,
                "class_weights_counts": None if self.class_weights is None else list(self.class_weights_counts),
                "class_weights_smooth": self.class_weights_smooth, "class_weights_path": self.class_weights_path,
                "aux_head": self.aux_head}


REWARD_KEYS = tuple(RewardSettings.model_fields)
