"""Read a study's search-space YAML into a validated :class:`Spec` and its trials, once.

    study = load_study("search_spaces/baseline.yaml")   # raises SpecError, one line
    study.spec, study.expansion.trials                   # Spec, list[TrialPlan]

Everything is checked before anything starts: every error is one line that names the
file, the line, the dotted key and what was expected. The keys and their checks are the
schema's (``rewardsweep.config``); this module adds what needs the outside world: the
model (a preset or a config file), paths, ``$VAR`` expansion and the command-line
overrides. A spec that loads has been expanded, so every trial it would run passes the
trial's own checks. Pure Python: it never imports torch, MMSeg or Ray.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rewardsweep.checks import Invalid, int_at_least, one_of
from rewardsweep.config.messages import SpecFile
from rewardsweep.config.spec_schema import (
    MAX_SPEC_BYTES,
    WANDB_MODES,
    SequentialSeeds,
    Spec,
    StudyFile,
    check_study_size,
    read_parameters,
    top_key_hint,
)
from rewardsweep.config.yaml import YamlError, load_yaml
from rewardsweep.errors import ConfigError, SpecError
from rewardsweep.formatting import as_written
from rewardsweep.study import arms, layout
from rewardsweep.sweep.expand import Expansion, expand_study

__all__ = ["Study", "load_study", "load_spec"]


@dataclasses.dataclass(frozen=True)
class Study:
    spec: Spec
    expansion: Expansion


def load_study(path: str | os.PathLike, *, storage: str | None = None, wandb_mode: str | None = None,
               max_concurrent: int | None = None) -> Study:
    """Read, validate and expand a search space; raise :class:`SpecError` (one line) if wrong.

    ``storage``, ``wandb_mode`` and ``max_concurrent`` override the spec (the launch
    command's ``--storage``, ``--wandb`` and ``--max-concurrent``).
    """
    spec = _read_spec(path, storage, wandb_mode, max_concurrent)
    return Study(spec, expand_study(spec))


def load_spec(path: str | os.PathLike, **overrides: Any) -> Spec:
    """:func:`load_study`'s spec (every trial is validated all the same)."""
    return load_study(path, **overrides).spec


def _read_spec(path: str | os.PathLike, storage: str | None, wandb_mode: str | None,
               max_concurrent: int | None) -> Spec:
    source = os.fspath(path)
    fpath = Path(source).expanduser()
    raw, lines, text = _read_spec_file(fpath, source)
    file = SpecFile(source, fpath.resolve().parent, lines)
    if raw is None:
        raise SpecError(f"{source}: empty file; expected a search space (see search_spaces/baseline.yaml)")
    if not isinstance(raw, Mapping):
        kind = "a list" if isinstance(raw, list) else f"a single value ({as_written(raw)})"
        raise SpecError(f"{source}:1: the top level is {kind}; expected a mapping of keys (name, model, seeds, ...)")
    try:
        top = StudyFile.model_validate(raw)
    except ValidationError as exc:
        raise file.from_validation(exc, StudyFile, hint=top_key_hint) from None
    sequential = isinstance(top.seeds, SequentialSeeds)
    if sequential and not arms.CONTROL.enabled(top):
        raise file.fail("seeds", "a sequential study decides each configuration against its paired control; "
                                 "set control: mle")
    model_ref, model, num_classes = _resolve_model(file, top.model)
    data_root = str(file.resolve(_expand_env(file, "data_root", top.data_root))) if top.data_root else None
    parameters = read_parameters(file, raw, top.control)
    check_study_size(file, top, parameters)   # before anything is built: bounded work for any spec
    storage_dir = _resolve_storage(file, top.storage, storage)
    wandb = top.wandb.model_dump()
    if wandb_mode is not None:
        wandb["mode"] = _override("--wandb", one_of(WANDB_MODES), wandb_mode)
    if max_concurrent is not None:
        max_concurrent = _override("--max-concurrent", int_at_least(1), max_concurrent)
    return Spec.resolved(
        top, source=source, path=fpath.resolve(), text=text, model=model, model_ref=model_ref,
        data_root=data_root, data_root_ref=top.data_root, num_classes=num_classes,
        seeds=tuple(range(top.seeds.max)) if sequential else tuple(top.seeds),
        sequential=top.seeds if sequential else None, fixed=parameters.fixed, origins=parameters.origins,
        grid=parameters.grid, sample=parameters.sample, control_grid=parameters.control_grid,
        resources=top.resources.model_dump(), storage=storage_dir, study_dir=str(Path(storage_dir) / top.name),
        wandb=wandb, lines=lines,
        max_concurrent=max_concurrent if max_concurrent is not None else top.max_concurrent,
    )


def _read_spec_file(path: Path, source: str) -> tuple[Any, dict[str, int], str]:
    """(parsed YAML, line table, text as written)."""
    try:
        with open(path, "rb") as handle:   # at most the cap: a 50 MB file (or /dev/zero) is not read whole
            data = handle.read(MAX_SPEC_BYTES + 1)
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(f"{source}: the file is larger than {MAX_SPEC_BYTES // 1024} KiB; a search space is "
                            f"a page of keys (expected at most {MAX_SPEC_BYTES // 1024} KiB)")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such search-space file") from None
    except IsADirectoryError:
        raise SpecError(f"{source}: is a folder; expected a search-space .yaml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{source}: cannot read the search-space file ({' '.join(str(exc).split())})") from None
    try:
        tree, lines = load_yaml(text, source)
    except YamlError as exc:
        raise SpecError(str(exc)) from None
    return tree, lines, text


def _override(flag: str, check: Any, value: Any) -> Any:
    try:
        return check(value)
    except Invalid as exc:
        raise SpecError(f"{flag}: {exc}") from None


def _expand_env(file: SpecFile, key: str, value: str) -> str:
    """``$VAR``/``${VAR}`` in a path; an unset variable is an error, not an empty string."""
    return layout.expand_env_vars(value, source=f"{file.where(key)}: {key}")


def _resolve_model(file: SpecFile, model_ref: str) -> tuple[str, str, int | None]:
    """(as written, what run_trial takes, its number of classes): a preset name, or the
    absolute path of a config .py, read here (MMEngine's reader, no torch) so that a
    broken config is found before Ray starts and in a dry run."""
    from rewardsweep.runners.presets import PRESETS, mmseg_config_classes, preset_names  # torch-free

    presets = tuple(preset_names())
    if model_ref in presets:
        return model_ref, model_ref, PRESETS[model_ref].num_classes
    if model_ref.endswith(".py") or "/" in model_ref or os.sep in model_ref:
        mpath = file.resolve(model_ref)
        if not mpath.is_file():
            raise file.fail("model", f"MMSeg config {model_ref!r} not found (looked for {mpath}); "
                                     f"expected a preset ({', '.join(presets)}) or an existing config .py")
        if mpath.suffix != ".py":
            raise file.fail("model", f"{model_ref!r} is not a .py file; expected an MMSeg config .py")
        try:
            num_classes = mmseg_config_classes(mpath)
        except ConfigError as exc:
            raise file.fail("model", str(exc)) from None
        return model_ref, str(mpath.resolve()), num_classes
    close = difflib.get_close_matches(model_ref, presets, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise file.fail("model", f"unknown preset {model_ref!r}; expected one of {', '.join(presets)} "
                             f"or a path to an MMSeg config .py{hint}")


def _resolve_storage(file: SpecFile, in_spec: str, override: str | None) -> str:
    """The storage folder, absolute, by the study layout's one rule (``--storage`` as given,
    else the spec's with ``$VARS`` expanded; a URI refused)."""
    if override is not None and (not isinstance(override, str) or not override):
        raise SpecError("--storage: expected a folder")
    source = "--storage" if override is not None else f"{file.where('storage')}: storage"
    folder = layout.study_dir_from_storage(override if override is not None else in_spec, "_",
                                           source=source, expand_env=override is None)
    return str(folder.parent)
