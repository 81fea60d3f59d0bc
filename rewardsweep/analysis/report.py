"""``rewardsweep report``: find the study, collect, summarise, write and print.

Targets: study folders (``runs/<name>``), spec YAML files (only their ``name`` and
``storage`` keys are read: the study folder is ``<storage>/<name>``, storage ``runs`` by
default, found as ``launch`` finds it: :func:`rewardsweep.study.layout.study_dir_from_storage`),
or nothing (the study under ``--runs`` whose records changed last). Several folders are
one study (a top-up); the report is written to the first one's ``report/``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from typing import Any

from rewardsweep import storage
from rewardsweep.errors import UserError
from rewardsweep.study import layout
from rewardsweep.study.layout import RECORDS_DIRNAME, REPORT_DIRNAME, SPEC_FILENAME


# --------------------------------------------------------------------------- finding the study

def _records_mtime(folder: Path) -> float | None:
    records = folder / RECORDS_DIRNAME
    if not records.is_dir():
        return None
    newest = None
    for p in records.glob("*.json"):
        try:
            m = p.stat().st_mtime
        except OSError:
            continue
        newest = m if newest is None else max(newest, m)
    return newest


def most_recent_study(runs: str | Path) -> Path:
    runs = Path(runs)
    if not runs.is_dir():
        raise UserError(f"{runs}: no such folder of studies; give a study folder or spec, or --runs DIR")
    best, best_m = None, None
    for child in sorted(runs.iterdir()):
        if child.is_dir():
            m = _records_mtime(child)
            if m is not None and (best_m is None or m > best_m):
                best, best_m = child, m
    if best is None:
        raise UserError(f"{runs}: no study with trial records ({runs}/<study>/{RECORDS_DIRNAME}/*.json)")
    return best


def read_spec_keys(spec: Path) -> dict[str, Any]:
    """A spec's top-level mapping, in the YAML dialect the spec loader uses (1.2: ``on`` is
    a string, ``1e-4`` a float; a duplicate key is an error). Not validated: the report
    needs only ``name``, ``storage``, ``seeds`` and ``wandb``, and no dataset or model."""
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe", pure=True).load(spec.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise UserError(f"{spec}: cannot read the spec ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise UserError(f"{spec}: not a mapping of keys; cannot tell which study to report")
    return data


def study_from_spec(spec: Path) -> Path:
    """The study folder of a spec: where ``launch`` run from here puts it, else where it
    would be had the spec been launched from its own folder."""
    data = read_spec_keys(spec)
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise UserError(f"{spec}: key 'name' missing or not a string; cannot tell which study to report")
    storage = data.get("storage") or layout.DEFAULT_STORAGE
    if not isinstance(storage, str):
        raise UserError(f"{spec}: key 'storage' is {storage!r}, expected a folder path")
    source = f"{spec}: storage"
    folder = layout.study_dir_from_storage(storage, data["name"], source=source)
    if not folder.is_dir():
        beside = layout.study_dir_from_storage(storage, data["name"], base=spec.parent, source=source)
        folder = beside if beside.is_dir() else folder
    if not folder.is_dir():
        raise UserError(f"{spec}: its study folder {folder} does not exist (has the study been launched?)")
    return folder


def resolve_targets(targets: list[str], runs: str | Path) -> list[Path]:
    if not targets:
        return [most_recent_study(runs)]
    folders = []
    for t in targets:
        p = Path(t)
        if p.is_file() and p.suffix in (".yaml", ".yml"):
            folder = study_from_spec(p)
        elif p.is_dir():
            folder = p.parent if p.name == RECORDS_DIRNAME and not (p / RECORDS_DIRNAME).is_dir() else p
        elif not p.exists():
            raise UserError(f"{t}: no such study folder or spec file")
        else:
            raise UserError(f"{t}: not a study folder or a spec YAML (.yaml/.yml)")
        if folder not in folders:
            folders.append(folder)
    for folder in folders:
        if not any((folder / RECORDS_DIRNAME).glob("*.json")):
            raise UserError(f"{folder}: no trial records ({folder / RECORDS_DIRNAME}/*.json is empty "
                            "or missing); has the study run?")
    return folders


def _spec_wandb(folder: Path) -> dict:
    """The ``wandb`` block of the spec copied into the study folder (project, mode), if any."""
    spec = folder / SPEC_FILENAME
    if not spec.is_file():
        return {}
    try:
        block = read_spec_keys(spec).get("wandb")
    except UserError:
        return {}
    return block if isinstance(block, dict) else {}


def top_up_hint(folders: list[Path], targets: list[str]):
    """How to launch more seeds of the reported study, as a :class:`next_steps.TopUp`.

    The spec the user gave (if a target was a spec), else the copy in the study folder
    (``spec.yaml``, the spec as last launched); ``--storage`` is added when the spec's own
    storage, resolved from here, would not land in this study folder. ``None`` when there
    is no spec to launch (or its name no longer matches the folder).
    """
    from rewardsweep.analysis.next_steps import TopUp

    if not folders:
        return None
    folder = folders[0]
    given = [t for t in targets if Path(t).is_file() and Path(t).suffix in (".yaml", ".yml")]
    spec = Path(given[0]) if given else folder / SPEC_FILENAME
    try:
        data = read_spec_keys(spec)
    except UserError:
        return None
    if data.get("name") != folder.name:
        return None
    storage = data.get("storage") or layout.DEFAULT_STORAGE
    try:
        lands = isinstance(storage, str) and \
            layout.study_dir_from_storage(storage, folder.name) == folder.resolve()
    except UserError:  # a URI, an unset variable: launch from here would not land there
        lands = False
    seeds = data.get("seeds") if isinstance(data.get("seeds"), (int, list)) else None
    return TopUp(spec=str(spec), storage=None if lands else str(folder.parent), seeds=seeds)


# --------------------------------------------------------------------------- the command

def build_report(folders: list[Path], *, out: Path, study: str, start: str | None = None,
                 extra=(), settings=None, plots: bool = True, warnings_out=None,
                 topup=None, target: str = "STUDY", all_configs: bool = False):
    """Collect, summarise and write; return ``(collection, summary, files, plot paths)``.

    ``topup`` and ``target`` only shape the next-step lines (the launch command, and how
    to rerun this report)."""
    from rewardsweep.analysis.collect import collect
    from rewardsweep.analysis.next_steps import next_steps
    from rewardsweep.analysis.render import write_files
    from rewardsweep.analysis.summary import summarize

    coll = collect(folders, start=start, extra=extra, all_configs=all_configs)
    if warnings_out is not None:
        for w in coll.warnings:
            warnings_out(w)
    where = ", ".join(coll.sources) or "the given sources"
    if coll.trials.empty:
        raise UserError(f"{where}: no readable trial records (every record file was skipped)")
    status = coll.trials["status"].value_counts()
    if not int(status.get("finished", 0)):
        raise UserError(f"{where}: no finished trials ({int(status.get('failed', 0))} failed, "
                        f"{int(status.get('diverged', 0))} diverged): nothing to report yet")
    from rewardsweep.analysis.sequential_view import sequential_view

    sequential = sequential_view(folders[0], coll.trials) if folders else None
    summary = summarize(coll, settings, seeds_due=sequential.seeds_due if sequential is not None else None)
    if sequential is not None:
        sequential.label(dict(zip(summary.table["config_id"], summary.table["label"])))
    summary.sequential = sequential
    if coll.unnamed:
        left = ", ".join(f"{cid} ({n} record{'s' if n != 1 else ''})" for cid, n in sorted(coll.unnamed.items()))
        summary.notes.append(f"left out: configuration(s) {left} that the study's spec, as last launched, no "
                             f"longer names (a grid or default changed since they ran); they are not in the "
                             f"table or the comparison family; --all-configs includes them")
    if summary.sequential is not None and summary.sequential.disagreements:
        summary.notes.append(f"WARNING: the records now give other sequential decisions than launch acted on "
                             f"for {', '.join(summary.sequential.disagreements)} (records changed after launch?)")
    if summary.settings.bootstrap_images:
        from rewardsweep.analysis.val_bootstrap import add_image_bootstrap

        before = len(coll.warnings)
        add_image_bootstrap(summary, coll, coll.warnings)
        if warnings_out is not None:
            for w in coll.warnings[before:]:
                warnings_out(w)
    plot_paths = {}
    if plots:
        from rewardsweep.analysis.plots import make_plots

        plot_paths = make_plots(summary, coll, out)
    summary.next_steps = next_steps(summary, topup, target,
                                    has_val_counts=bool(coll.trials["val_counts_file"].notna().any()))
    files = write_files(summary, coll, plot_paths, out, study)
    return coll, summary, files, plot_paths


def report_command(args) -> int:
    from rewardsweep.analysis.summary import Settings

    targets = list(getattr(args, "target", None) or [])
    wandb_path = getattr(args, "wandb", None)
    folders = resolve_targets(targets, args.runs) if (targets or not wandb_path) else []
    study = getattr(args, "study", None) or (folders[0].name if folders else None)
    if args.effect <= 0:
        raise UserError(f"--effect {args.effect}: must be a positive number of mIoU points")
    if not 0 < args.alpha < 1 or not 0 < args.power < 1:
        raise UserError("--alpha and --power must lie strictly between 0 and 1")

    def warn(line: str) -> None:
        print(f"rewardsweep: warning: {line}", file=sys.stderr)

    extra = []
    if wandb_path:
        if not study:
            raise UserError("--wandb needs --study NAME (the tag of the study's runs)")
        from rewardsweep.analysis.wandb_io import collect_wandb

        wb_warn: list[str] = []
        extra = collect_wandb(wandb_path, study, warnings=wb_warn)
        for w in wb_warn:
            warn(w)
        if not extra and not folders:
            raise UserError(f"--wandb {wandb_path}: no trial runs tagged {study!r}")
    given_out = getattr(args, "out", None)
    out = Path(given_out) if given_out else (folders[0] if folders else Path(args.runs) / study) / REPORT_DIRNAME
    margin = getattr(args, "margin", None)
    if margin is not None and not margin > 0:
        raise UserError(f"--margin {margin}: must be a positive number of mIoU points")
    settings = Settings(alpha=args.alpha, power=args.power, effect=args.effect / 100.0,
                        correction=args.correction, margin=None if margin is None else margin / 100.0,
                        bootstrap_images=bool(getattr(args, "bootstrap_images", False)))
    storage.check_writable(out, "report folder", fix="the study folder holds it: fix its storage")
    try:
        coll, summary, files, plots = build_report(
            folders, out=out, study=study, start=getattr(args, "start", None), extra=extra,
            settings=settings, plots=not args.no_plots, warnings_out=warn,
            topup=top_up_hint(folders, targets), all_configs=bool(getattr(args, "all_configs", False)),
            target=" ".join(shlex.quote(t) for t in targets) if targets else str(folders[0]) if folders else "STUDY")
    except OSError as exc:  # the report's own files (tables, plots): the disk filled up, say
        failure = storage.storage_failure(exc, out)
        if failure is None and exc.errno not in storage.STORAGE_ERRNOS:
            raise
        failure = failure or exc
        raise storage.StorageError(f"report folder {out}: cannot write {failure.filename or 'the report'}: "
                                   f"{storage.describe(failure)}; free space or fix permissions, then run the "
                                   f"report again (the records are untouched)") from None

    from rewardsweep.analysis.render import print_console

    print_console(summary, coll, files)
    if getattr(args, "wandb_summary", False):
        _log_to_wandb(summary, coll, plots, study=study, folders=folders, wandb_path=wandb_path,
                      home=Path(given_out) if given_out else (folders[0] if folders else out.parent), warn=warn,
                      settings={"alpha": args.alpha, "power": args.power, "effect_points": args.effect,
                                "correction": args.correction, "sources": coll.sources})
    return 0


def _log_to_wandb(summary, coll, plots, *, study: str, folders: list[Path], wandb_path: str | None, home: Path,
                  warn, settings: dict) -> None:
    """``--wandb-summary``: the report as the study's W&B run, where the trials' runs went
    (``WANDB_*``, then the spec's ``wandb:``; runs under ``<study>/wandb/``, or ``--out``'s)."""
    from rewardsweep.analysis.render import blocks
    from rewardsweep.analysis.wandb_io import log_summary, report_run_id, report_tables
    from rewardsweep.wandb_settings import resolve_options

    options = resolve_options(_spec_wandb(folders[0]) if folders else {}, None, home, study,
                              entity_project=wandb_path)
    if options.note:
        warn(options.note)
    if not options.enabled:
        print(f"W&B disabled ({options.source}): no report run logged")
        return
    mode, folder = log_summary(summary.table, plots, study=study, options=options, settings=settings,
                               tables=report_tables(blocks(summary, coll, plots, study)))
    where = f"{options.entity}/{options.project}" if options.entity else options.project
    print(f"W&B: logged the report as run '{report_run_id(study)}' (job_type report, {mode}) in project {where}; "
          f"running the report again updates that run")
    if mode == "offline" and folder is not None:
        print(f"upload it with: wandb sync {folder}")
