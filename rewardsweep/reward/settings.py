"""The reward part of a trial config, validated once (``docs/architecture.md``).

``RewardSettings.from_config`` reads the keys ``estimator``, ``samples``, ``baseline.kind``,
``baseline.coef``, ``baseline.decay``, ``normalize_advantage``, ``class_weights.counts``,
``class_weights.smooth`` and ``aux_head`` of a trial config and raises
:class:`rewardsweep.errors.ConfigError` with one line naming the source, the dotted key and
what was expected. The spec validator calls the same function, so a bad search space fails
at spec time with the same message a trial would give.

Which keys matter (everything else is accepted and reported by ``ignored_keys``, so a
sweep can run a grid point that only differs in an ignored key once):

- ``baseline.coef`` (beta) is used by ``batch_loo`` only (and by ``reward_weighted_ce``
  with ``baseline.kind: batch_loo``); ``baseline.decay`` by ``ema`` only.
- ``reward_weighted_ce`` uses ``baseline.kind`` ``none`` (beta = 0) or ``batch_loo``
  (beta = coef); other kinds are an error. It ignores ``samples`` and
  ``normalize_advantage``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from rewardsweep.errors import ConfigError
from rewardsweep.trial_config import TRIAL_DEFAULTS
from rewardsweep.reward.class_weights import (
    class_weight_values,
    class_weights_from_counts,
    load_counts,
    validate_counts,
    validate_smooth,
)

__all__ = ["AUX_HEADS", "BASELINES", "DEFAULTS", "ESTIMATORS", "RewardSettings"]

ESTIMATORS = ("reinforce", "reward_weighted_ce")
BASELINES = ("none", "batch_loo", "sample_loo", "greedy", "ema")
AUX_HEADS = ("off", "mle", "reward")
RWCE_BASELINES = ("none", "batch_loo")

DEFAULTS = {key: TRIAL_DEFAULTS[key] for key in
            ("estimator", "samples", "baseline", "normalize_advantage", "class_weights", "aux_head")}


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _one_line(x) -> str:
    return " ".join(repr(x).split())


@dataclass(frozen=True)
class RewardSettings:
    """Validated reward settings of one trial. Build it with :meth:`from_config`."""

    # Field defaults are the trial config's (trial_config.TRIAL_DEFAULTS), not a copy.
    estimator: str = DEFAULTS["estimator"]
    samples: int = DEFAULTS["samples"]
    baseline_kind: str = DEFAULTS["baseline"]["kind"]
    baseline_coef: float = DEFAULTS["baseline"]["coef"]
    baseline_decay: float = DEFAULTS["baseline"]["decay"]
    normalize_advantage: bool = DEFAULTS["normalize_advantage"]
    class_weights_counts: tuple[float, ...] | None = None
    class_weights_smooth: float | None = None
    class_weights_path: str | None = None  # where the counts came from, when a file
    aux_head: str = DEFAULTS["aux_head"]

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_config(
        cls,
        config: dict,
        source: str = "trial config",
        batch_size: int | None = None,
        num_classes: int | None = None,
        base_dir: str | Path | None = None,
    ) -> RewardSettings:
        """Validate the reward keys of ``config`` (missing or null keys take ``DEFAULTS``;
        ``class_weights: null`` means no class weights).

        ``batch_size`` and ``num_classes`` default to ``config["batch_size"]`` and the length
        of ``config["start"]["class_names"]`` when present; checks that need them are skipped
        when they are unknown. A relative ``class_weights.counts`` path is read relative to
        ``base_dir`` (default: the working directory); the file is read here, so a missing
        or malformed file fails before training.
        """

        def fail(key: str, message: str) -> ConfigError:
            return ConfigError(f"{source}: {key}: {message}")

        if not isinstance(config, dict):
            raise ConfigError(f"{source}: expected a mapping of trial settings, got {type(config).__name__}")
        if batch_size is None and _is_int(config.get("batch_size")):
            batch_size = config["batch_size"]
        if num_classes is None:
            start = config.get("start")
            names = start.get("class_names") if isinstance(start, dict) else None
            if isinstance(names, list) and names:
                num_classes = len(names)

        def get(group: dict, key: str, default):
            value = group.get(key)
            return default if value is None else value

        estimator = get(config, "estimator", DEFAULTS["estimator"])
        if estimator not in ESTIMATORS:
            raise fail("estimator", f"unknown estimator {_one_line(estimator)}; expected one of {', '.join(ESTIMATORS)}")

        samples = get(config, "samples", DEFAULTS["samples"])
        if not _is_int(samples) or samples < 1:
            raise fail("samples", f"expected an integer >= 1 (labellings per image), got {_one_line(samples)}")

        baseline = get(config, "baseline", {})
        if not isinstance(baseline, dict):
            raise fail("baseline", f"expected a mapping with keys kind, coef, decay, got {_one_line(baseline)}")
        unknown = sorted(set(baseline) - {"kind", "coef", "decay"})
        if unknown:
            raise fail(f"baseline.{unknown[0]}", "unknown key; expected kind, coef or decay")
        kind = get(baseline, "kind", DEFAULTS["baseline"]["kind"])
        if kind not in BASELINES:
            raise fail("baseline.kind", f"unknown baseline {_one_line(kind)}; expected one of {', '.join(BASELINES)}")
        coef = get(baseline, "coef", DEFAULTS["baseline"]["coef"])
        if not _is_number(coef) or coef < 0:
            raise fail("baseline.coef", f"expected a number >= 0 (beta), got {_one_line(coef)}")
        decay = get(baseline, "decay", DEFAULTS["baseline"]["decay"])
        if not _is_number(decay) or not 0 < decay < 1:
            raise fail("baseline.decay", f"expected a number in (0, 1) (EMA decay), got {_one_line(decay)}")

        normalize = get(config, "normalize_advantage", DEFAULTS["normalize_advantage"])
        if not isinstance(normalize, bool):
            raise fail("normalize_advantage", f"expected true or false, got {_one_line(normalize)}")

        aux_head = get(config, "aux_head", DEFAULTS["aux_head"])
        if aux_head not in AUX_HEADS:
            raise fail("aux_head", f"unknown mode {_one_line(aux_head)}; expected one of {', '.join(AUX_HEADS)}")

        # combinations
        if estimator == "reinforce" and kind == "sample_loo" and samples < 2:
            raise fail(
                "baseline.kind",
                f"'sample_loo' needs several samples per image; expected samples >= 2, got samples={samples}",
            )
        if estimator == "reward_weighted_ce" and kind not in RWCE_BASELINES:
            raise fail(
                "baseline.kind",
                f"estimator 'reward_weighted_ce' got baseline {_one_line(kind)}; "
                "expected none (beta = 0) or batch_loo (beta = coef)",
            )
        if kind == "batch_loo" and batch_size is not None and batch_size < 2:
            raise fail(
                "baseline.kind",
                f"'batch_loo' needs other images in the batch; expected batch_size >= 2, got batch_size={batch_size}",
            )

        counts = smooth = path = None
        cw = config.get("class_weights")  # null: no class weights
        if cw is not None:
            if not isinstance(cw, dict):
                raise fail("class_weights", f"expected null or a mapping with keys counts, smooth, got {_one_line(cw)}")
            unknown = sorted(set(cw) - {"counts", "smooth"})
            if unknown:
                raise fail(f"class_weights.{unknown[0]}", "unknown key; expected counts or smooth")
            if cw.get("counts") is None:
                raise fail("class_weights.counts", "missing; expected a list of per-class pixel counts or a counts file path")
            raw = cw["counts"]
            file_smooth = None
            if isinstance(raw, (str, Path)):
                p = Path(raw)
                if not p.is_absolute() and base_dir is not None:
                    p = Path(base_dir) / p
                try:
                    loaded = load_counts(p)
                except ConfigError as exc:
                    raise fail("class_weights.counts", str(exc)) from None
                counts, file_smooth, path = loaded.counts, loaded.smooth, str(p)
            else:
                try:
                    counts = validate_counts(raw, where="class_weights.counts")
                except ConfigError as exc:
                    raise ConfigError(f"{source}: {exc}") from None
            if num_classes is not None and len(counts) != num_classes:
                raise fail("class_weights.counts", f"expected {num_classes} counts (one per class), got {len(counts)}")
            if cw.get("smooth") is not None:
                smooth = cw["smooth"]
            elif file_smooth is not None:
                smooth = file_smooth
            else:
                raise fail("class_weights.smooth", "missing; expected a number >= 0 (e.g. 0.05)")
            try:
                smooth = validate_smooth(smooth)
                class_weight_values(counts, smooth)  # a zero count with zero smoothing
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None

        return cls(
            estimator=estimator,
            samples=int(samples),
            baseline_kind=kind,
            baseline_coef=float(coef),
            baseline_decay=float(decay),
            normalize_advantage=normalize,
            class_weights_counts=counts,
            class_weights_smooth=smooth,
            class_weights_path=path,
            aux_head=aux_head,
        )

    # ------------------------------------------------------------------ using
    @property
    def beta(self) -> float:
        """beta of ``reward_weighted_ce`` (coef under batch_loo, else 0) or of ``batch_loo``."""
        return self.baseline_coef if self.baseline_kind == "batch_loo" else 0.0

    @property
    def uses_class_weights(self) -> bool:
        return self.class_weights_counts is not None

    def class_weight_tensor(self):
        """The per-class weights (float32 tensor ``[C]``) or None."""
        if self.class_weights_counts is None:
            return None
        return class_weights_from_counts(self.class_weights_counts, self.class_weights_smooth)

    def ignored_keys(self) -> tuple[str, ...]:
        """Dotted config keys whose value has no effect under these settings."""
        ignored = []
        if self.estimator == "reward_weighted_ce":
            ignored += ["samples", "normalize_advantage"]
        if self.baseline_kind != "batch_loo":
            ignored.append("baseline.coef")
        if self.baseline_kind != "ema" or self.estimator != "reinforce":
            ignored.append("baseline.decay")
        return tuple(ignored)

    def to_dict(self) -> dict:
        """A JSON-able dict of the settings (flat field names)."""
        d = asdict(self)
        if d["class_weights_counts"] is not None:
            d["class_weights_counts"] = list(d["class_weights_counts"])
        return d


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
