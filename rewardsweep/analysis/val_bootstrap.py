"""Validation-set uncertainty: the paired difference's interval over seeds and val images.

mIoU is a ratio of pixel counts summed over the validation split, and the split is itself
a sample of images: a "beats control" can hinge on a few images on which the
configuration happens to do well. Each finished trial keeps its final per-image counts
(``val_counts/<trial>.json``, see ``rewardsweep.study.records.write_val_counts``); ``rewardsweep report
--bootstrap-images`` gives each comparison an interval that counts both sources
(:func:`stats.crossed_interval`: the seed part with Student t, the image part by resampling
the images, the seed x image residual once) and says whether each verdict survives: whether
the interval at the verdict's adjusted level still excludes 0 on the same side.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rewardsweep.analysis import stats
from rewardsweep.analysis.collect import Collection
from rewardsweep.analysis.summary import Summary
from rewardsweep.study import arms
from rewardsweep.study.records import read_val_counts

COLUMNS = ("img_pairs", "img_n", "img_low", "img_high", "img_adj_low", "img_adj_high", "img_survives",
           "img_seed_sd", "img_image_sd", "img_resamples")
METHOD = ("The val split is a sample of images too. The interval of each mean paired difference counts "
          "both sources: which seeds were run (Student t with one degree of freedom fewer than the seeds, "
          "scaled by the seed-to-seed SD) and which images make up the split (every trial's mIoU recomputed "
          "from its per-image counts on resampled images, the same draw for every trial; its spread scaled to "
          "the delete-one-image jackknife), the per-trial image noise that both contain counted once (in "
          "the seed part). "
          "Intervals: 95%, and at the verdict's adjusted level; a verdict survives when the latter still "
          "excludes 0 on its side. SD seeds / images: the two parts of the mean's standard error. Measured "
          "coverage of the 95% interval at 6 seeds: 93-97% whether seeds, images or the per-trial noise "
          "dominate (docs/report.md).")
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
                        n_resamples: int | None = None, seed: int = stats.IMAGE_SEED) -> None:
    """Add the seeds x images columns (``COLUMNS``) to ``summary.table`` in place.

    ``n_resamples``: image resamples; by default enough for 50 draws beyond each end of the
    narrowest interval asked for (the adjusted levels of many comparisons are far out)."""
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
    levels = [summary.settings.confidence] + [x for x in t.get("adj_level", pd.Series(dtype=float)).tolist()
                                              if isinstance(x, float) and math.isfinite(x)]
    n_resamples = n_resamples or stats.image_resamples_for(levels)
    weights = stats.image_resample_weights(n_images, n_resamples, seed)
    jack = stats.image_jackknife_weights(n_images)
    # every trial's mIoU under every image resample and every left-out image (memory: B + I floats each)
    boot = {i: stats.resampled_miou(ic[None], uc[None], weights)[:, 0] for i, (ic, uc) in counts.items()}
    left_out = {i: stats.resampled_miou(ic[None], uc[None], jack)[:, 0] for i, (ic, uc) in counts.items()}
    full = {i: float(stats.resampled_miou(ic[None], uc[None], np.ones((1, n_images)))[0, 0])
            for i, (ic, uc) in counts.items()}
    trials = coll.trials
    by_key: dict[tuple, dict[int, int]] = {}
    for i in boot:
        by_key.setdefault((trials.at[i, "config_id"], trials.at[i, "arm"]), {})[int(trials.at[i, "seed"])] = i
    few: list[str] = []
    controls = arms.named("control")
    for r in t.itertuples():
        if r.arm in controls or not isinstance(r.control_id, str):
            continue
        mine, ctrl = by_key.get((r.config_id, r.arm), {}), by_key.get((r.control_id, arms.CONTROL.name), {})
        seeds = sorted(set(mine) & set(ctrl))
        if len(seeds) < stats.IMAGE_MIN_SEEDS:
            if seeds:
                few.append(f"{r.config_id} ({len(seeds)})")
            continue
        a, b = (np.stack([boot[k[s]] for s in seeds], axis=-1) for k in (mine, ctrl))
        ja, jb = (np.stack([left_out[k[s]] for s in seeds], axis=-1) for k in (mine, ctrl))
        fa, fb = (np.array([full[k[s]] for s in seeds]) for k in (mine, ctrl))
        part, _ = stats.crossed_variance(a, b, fa, fb, ja, jb)
        low, high = stats.crossed_interval(a, b, fa, fb, summary.settings.confidence, ja, jb)
        t.at[r.Index, "img_pairs"], t.at[r.Index, "img_n"] = len(seeds), n_images
        t.at[r.Index, "img_low"], t.at[r.Index, "img_high"] = low, high
        t.at[r.Index, "img_seed_sd"], t.at[r.Index, "img_image_sd"] = math.sqrt(part.seed), math.sqrt(part.image)
        t.at[r.Index, "img_resamples"] = n_resamples
        if isinstance(r.adj_level, float) and math.isfinite(r.adj_level):
            alow, ahigh = stats.crossed_interval(a, b, fa, fb, r.adj_level, ja, jb)
            t.at[r.Index, "img_adj_low"], t.at[r.Index, "img_adj_high"] = alow, ahigh
            if r.verdict in ("beats control", "worse"):
                holds = alow > 0 if r.verdict == "beats control" else ahigh < 0
                t.at[r.Index, "img_survives"] = "yes" if holds else "no"
    if few:
        warnings.append(f"--bootstrap-images: no seeds x images interval with fewer than {stats.IMAGE_MIN_SEEDS} "
                        f"paired seeds (the seed part would rest on {stats.IMAGE_MIN_SEEDS - 2} degree of freedom "
                        f"or none): " + ", ".join(few))
