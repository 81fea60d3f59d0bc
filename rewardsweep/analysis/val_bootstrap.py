"""Validation-set uncertainty: the paired difference bootstrapped over seeds and val images.

mIoU is a ratio of pixel counts summed over the validation split, and the split is itself
a sample of images: a "beats control" can hinge on a few images on which the
configuration happens to do well. Each finished trial keeps its final per-image counts
(``val_counts/<trial>.json``, see ``rewardsweep.study.records.write_val_counts``); ``rewardsweep report
--bootstrap-images`` resamples seeds and val images together
(:func:`stats.two_level_bootstrap`) and says whether each verdict survives: whether the
bootstrap interval at the verdict's adjusted level still excludes 0 on the same side.
"""

from __future__ import annotations

import math

import numpy as np

from rewardsweep.analysis import stats
from rewardsweep.analysis.collect import Collection
from rewardsweep.analysis.summary import Summary
from rewardsweep.study.records import read_val_counts

COLUMNS = ("img_pairs", "img_n", "img_low", "img_high", "img_adj_low", "img_adj_high", "img_survives")
CHECK_TOL = 1e-6          # counts must reproduce the record's final mIoU (MMSeg sums in float32)


def _load(coll: Collection, warnings: list[str]) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    """Per-image (intersect, union) of every finished trial that has them, checked; None
    (with a warning) when trials were evaluated on different val splits."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    bad: list[str] = []
    fin = coll.trials[(coll.trials["status"] == "finished") & coll.trials["val_counts_file"].notna()]
    for i, path, miou in zip(fin.index, fin["val_counts_file"], fin["miou_final"]):
        try:
            data = read_val_counts(path)
            inter = np.asarray(data["intersect"], dtype=float)
            union = np.asarray(data["union"], dtype=float)
        except (OSError, ValueError, KeyError, TypeError):
            bad.append(f"{path} (unreadable)")
            continue
        with np.errstate(all="ignore"):
            got = np.nanmean(inter.sum(0) / np.where(union.sum(0) > 0, union.sum(0), np.nan))
        if inter.ndim != 2 or inter.shape != union.shape or not abs(got - miou) <= CHECK_TOL:
            bad.append(f"{path} (its counts do not give the record's final mIoU)")
            continue
        out[i] = (inter, union)
    shapes = {v[0].shape for v in out.values()}
    if len(shapes) > 1:
        warnings.append(f"val counts of {len(shapes)} different shapes (images x classes: "
                        f"{', '.join(map(str, sorted(shapes)))}): trials were evaluated on different "
                        "val splits; no val-image bootstrap")
        return None
    if bad:
        warnings.append(f"{len(bad)} val count file(s) left out of the val-image bootstrap: "
                        + "; ".join(bad[:3]) + (" ..." if len(bad) > 3 else ""))
    return out


def add_image_bootstrap(summary: Summary, coll: Collection, warnings: list[str],
                        n_resamples: int = stats.IMAGE_RESAMPLES, seed: int = stats.IMAGE_SEED) -> None:
    """Add the two-level bootstrap columns (``COLUMNS``) to ``summary.table`` in place."""
    t = summary.table
    for col in COLUMNS:
        t[col] = np.nan if col != "img_survives" else ""
    counts = _load(coll, warnings)
    if counts is None:
        return
    if not counts:
        warnings.append("--bootstrap-images: no finished trial has per-image val counts "
                        "(val_counts/; trials run before this version have none): nothing to bootstrap")
        return
    n_images = next(iter(counts.values()))[0].shape[0]
    weights = stats.image_resample_weights(n_images, n_resamples, seed)
    # mIoU of every trial under every image resample, one trial at a time (memory: B floats).
    boot = {i: stats.resampled_miou(ic[None], uc[None], weights)[:, 0] for i, (ic, uc) in counts.items()}
    trials = coll.trials
    by_key: dict[tuple, dict[int, int]] = {}
    for i in boot:
        by_key.setdefault((trials.at[i, "config_id"], trials.at[i, "arm"]), {})[int(trials.at[i, "seed"])] = i
    for r in t.itertuples():
        if r.arm == "mle" or not isinstance(r.control_id, str):
            continue
        mine, ctrl = by_key.get((r.config_id, r.arm), {}), by_key.get((r.control_id, "mle"), {})
        seeds = sorted(set(mine) & set(ctrl))
        if len(seeds) < 2:
            continue
        a = np.stack([boot[mine[s]] for s in seeds], axis=-1)
        b = np.stack([boot[ctrl[s]] for s in seeds], axis=-1)
        reps = stats.two_level_bootstrap(a, b, seed=seed)
        low, high = stats.percentile_interval(reps, summary.settings.confidence)
        t.at[r.Index, "img_pairs"], t.at[r.Index, "img_n"] = len(seeds), n_images
        t.at[r.Index, "img_low"], t.at[r.Index, "img_high"] = low, high
        if isinstance(r.adj_level, float) and math.isfinite(r.adj_level):
            alow, ahigh = stats.percentile_interval(reps, r.adj_level)
            t.at[r.Index, "img_adj_low"], t.at[r.Index, "img_adj_high"] = alow, ahigh
            if r.verdict in ("beats control", "worse"):
                holds = alow > 0 if r.verdict == "beats control" else ahigh < 0
                t.at[r.Index, "img_survives"] = "yes" if holds else "no"
