"""``rewardsweep class-weights``: ground-truth pixels per class over a split, and the weights.

The split's files are listed by the preset's own MMSeg dataset class (the same images and
labels a trial trains on), and every label goes through the same id mapping as in
training (the dataset's label map, e.g. Mapillary's ``Unlabeled`` -> ignore, EasyPortrait
face parsing's ``person`` -> background), as a lookup table: one ``np.bincount`` per label
file. Pixels at the ignore index are not counted; any other id beyond the class count is
a :class:`DataError` naming the file.

The counts file (read by :func:`rewardsweep.reward.class_weights.load_counts`, and by a
search space's ``class_weights: {counts: FILE, smooth: 0.05}``) is::

    {"dataset", "split", "class_names", "counts", "smooth", "weights",
     "data_root", "images", "ignored_pixels"}

with the weights from the reward package's formula (``docs/method.md``, "Class weights").
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rewardsweep.errors import DataError
from rewardsweep.runners.data_checks import bad_label_ids, check_dataset_folders, label_error, label_lut
from rewardsweep.runners.presets import ModelSetting, resolve_setting, split_dataset
from rewardsweep.study.atomic import atomic_write_json


@dataclass
class PixelCounts:
    dataset: str
    split: str
    data_root: str | None
    class_names: tuple[str, ...]
    counts: np.ndarray  # int64 [C]
    ignored: int
    images: int
    ignore_index: int = 255


def _read_label(path: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            label = np.asarray(img)
    except FileNotFoundError:
        raise DataError(f"{path}: label file does not exist") from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable label image ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if label.ndim != 2:
        raise DataError(f"{path}: label has shape {tuple(label.shape)}; expected a single-channel image of "
                        f"class ids (not a colour-coded label)")
    return label


def count_label(path: str, lut: np.ndarray, num_classes: int, ignore_index: int) -> tuple[np.ndarray, int]:
    """Pixels per class (int64 ``[C]``) and ignored pixels in one label file."""
    raw = _read_label(path)
    if raw.dtype != np.uint8 and raw.size and int(raw.max()) >= len(lut):
        lut = np.concatenate([lut, np.arange(len(lut), int(raw.max()) + 1)])
    if raw.size and int(raw.min()) < 0:
        raise label_error(path, np.unique(raw[raw < 0]), num_classes, ignore_index)
    label = lut[raw]
    bad = bad_label_ids(label, num_classes, ignore_index)
    if bad.size:
        raws = np.unique(raw[np.isin(label, bad)])
        extra = "" if np.array_equal(raws, bad) else f" (raw id(s) {', '.join(str(int(x)) for x in raws[:5])})"
        raise label_error(path, bad, num_classes, ignore_index, extra)
    hist = np.bincount(label.ravel(), minlength=num_classes)  # ids are classes or the ignore index now
    ignored = int(hist[ignore_index]) if 0 <= ignore_index < len(hist) else 0
    return hist[:num_classes].astype(np.int64), ignored


def label_files(setting: ModelSetting, split: str) -> tuple[list[tuple[str, Any]], str | None]:
    """(label path, (label map, reduce_zero_label)) of every image of ``split``, and its data root."""
    from mmseg.registry import DATASETS

    cfg = split_dataset(setting, split)
    cfg["pipeline"] = []
    cfg["lazy_init"] = True
    dataset = DATASETS.build(cfg)
    check_dataset_folders(dataset)
    dataset._folders_checked = True
    dataset.full_init()
    files = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if "seg_map_path" not in info:
            raise DataError(f"{info.get('img_path', '?')}: has no label path (the split has no annotations)")
        files.append((info["seg_map_path"], (info.get("label_map"), bool(info.get("reduce_zero_label")))))
    return files, cfg.get("data_root")


def count_pixels(dataset: str, data_root: str | None = None, split: str = "train", workers: int = 1,
                 progress: Callable[[int, int], None] | None = None) -> PixelCounts:
    """Ground-truth pixels per class over ``split`` of a preset (or MMSeg config path)."""
    setting = resolve_setting(dataset, data_root)
    files, root = label_files(setting, split)
    num_classes, ignore = setting.num_classes, setting.ignore_index
    luts: dict[Any, np.ndarray] = {}

    def one(item: tuple[str, Any]) -> tuple[np.ndarray, int]:
        path, (label_map, reduce_zero) = item
        key = (tuple(sorted((label_map or {}).items())), reduce_zero)
        if key not in luts:
            luts[key] = label_lut(label_map, reduce_zero)
        return count_label(path, luts[key], num_classes, ignore)

    counts = np.zeros(num_classes, dtype=np.int64)
    ignored = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # PIL decodes without the GIL
        for done, (hist, n_ignored) in enumerate(pool.map(one, files), start=1):
            counts += hist
            ignored += n_ignored
            if progress:
                progress(done, len(files))
    return PixelCounts(dataset=dataset, split=split, data_root=root, class_names=tuple(setting.class_names),
                       counts=counts, ignored=ignored, images=len(files), ignore_index=ignore)


def write_counts(result: PixelCounts, smooth: float, out: str | os.PathLike) -> dict:
    """Write the counts file (with the smoothed weights); returns what was written."""
    from rewardsweep.reward.class_weights import counts_record

    record = counts_record(result.dataset, result.split, result.class_names, result.counts.tolist(), smooth)
    record.update(data_root=result.data_root, images=result.images, ignored_pixels=result.ignored)
    atomic_write_json(out, record, indent=1)
    return record


def default_out(dataset: str) -> str:
    stem = Path(dataset).stem if dataset.endswith(".py") else dataset.replace("/", "_")
    return f"{stem}-class-weights.json"


def class_weights_command(args) -> int:
    """``rewardsweep class-weights DATASET``: count, write the counts file, print the table."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    console = Console(width=100)
    started = time.perf_counter()
    workers = args.workers or min(8, os.cpu_count() or 1)
    with Progress(TextColumn("[bold]counting {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"{args.dataset} {args.split}", total=None)
        result = count_pixels(args.dataset, args.data_root, args.split, workers,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    out = args.out or default_out(args.dataset)
    record = write_counts(result, args.smooth, out)

    total = int(result.counts.sum())
    console.print(f"{args.dataset} split {args.split}: {result.images} label files, "
                  f"{int(result.counts.sum()) + result.ignored:,} pixels, smooth {args.smooth:g}",
                  soft_wrap=True, markup=False, highlight=False)
    table = Table()
    table.add_column("class")
    table.add_column("pixels", justify="right")
    table.add_column("frequency", justify="right")
    table.add_column("weight", justify="right")
    for name, n, w in zip(result.class_names, result.counts.tolist(), record["weights"]):
        table.add_row(name, f"{n:,}", f"{n / total:.5f}" if total else "-", f"{w:.4f}")
    console.print(table)
    if result.ignored:
        console.print(f"not counted (ignore index {result.ignore_index}): {result.ignored:,} pixels "
                      f"({result.ignored / (total + result.ignored):.2%})")
    console.print(f"wrote {out} in {time.perf_counter() - started:.1f} s; use it in a search space as\n"
                  f"  class_weights: {{counts: {Path(out).resolve()}, smooth: {args.smooth:g}}}",
                  soft_wrap=True, markup=False, highlight=False)
    return 0
