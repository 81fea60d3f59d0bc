"""The study folder: which file is where, what a trial is called, which folder a spec names.

Layout (see ``docs/architecture.md``)::

    <study_dir>/spec.yaml                 the spec as last launched (older differing copies: spec-history/)
    <study_dir>/start.json                the start checkpoint(s) and their val mIoU, computed once
    <study_dir>/plan.json                 the study's name and the configurations the spec named at its last launch
    <study_dir>/records/<trial>.json      one record per trial (invalid ones set aside in records/invalid/)
    <study_dir>/diagnostics/<trial>.jsonl per-step diagnostics of a trial
    <study_dir>/val_counts/<trial>.json   per-image confusion counts of a trial's final evaluation
    <study_dir>/checkpoints/<trial>.pth   a trial's final weights (``checkpoints: final``), and
    <study_dir>/checkpoints/<trial>.py    the MMEngine config that rebuilds and evaluates the model
    <study_dir>/ray/launch-<ts>/          Ray Tune's experiment of one launch (+ rewardsweep-launch.json)
    <study_dir>/wandb/                    offline W&B runs
    <study_dir>/report/                   what ``rewardsweep report`` writes

``<trial>`` is :func:`trial_name`. Stdlib only: the driver, the workers and the report import it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rewardsweep.errors import SpecError

RECORDS_DIRNAME = "records"
DIAGNOSTICS_DIRNAME = "diagnostics"
VAL_COUNTS_DIRNAME = "val_counts"
CHECKPOINTS_DIRNAME = "checkpoints"
INVALID_DIRNAME = "invalid"            # under records/
SPEC_FILENAME = "spec.yaml"
SPEC_HISTORY_DIRNAME = "spec-history"
START_FILENAME = "start.json"
SEQUENTIAL_FILENAME = "sequential.json"        # a sequential study's design and the decisions launch took
PLAN_FILENAME = "plan.json"                    # the study's name and the configurations its spec names (last launch)
RAY_DIRNAME = "ray"
LAUNCH_FILENAME = "rewardsweep-launch.json"   # in each ray/launch-<ts>/
WANDB_DIRNAME = "wandb"
REPORT_DIRNAME = "report"
LOCK_FILENAME = ".launch.lock"
DEFAULT_STORAGE = "runs"

_TRIAL_NAME = re.compile(r"^(?P<config_id>.+)-(?P<arm>[a-z]+)-seed(?P<seed>-?\d+)$")


def trial_name(config_id: str, arm: str, seed: int) -> str:
    """The name of a trial everywhere: record file stem, Ray trial name, progress lines."""
    return f"{config_id}-{arm}-seed{int(seed)}"


def parse_trial_name(name: str) -> tuple[str, str, int]:
    """``(config_id, arm, seed)`` of a :func:`trial_name`; ``ValueError`` if it is not one."""
    match = _TRIAL_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a trial name (<config_id>-<arm>-seed<seed>)")
    return match["config_id"], match["arm"], int(match["seed"])


def record_path(study_dir: str | os.PathLike, config_id: str, arm: str, seed: int) -> Path:
    return Path(study_dir) / RECORDS_DIRNAME / f"{trial_name(config_id, arm, seed)}.json"


def diagnostics_path(study_dir: str | os.PathLike, config_id: str, arm: str, seed: int) -> Path:
    return Path(study_dir) / DIAGNOSTICS_DIRNAME / f"{trial_name(config_id, arm, seed)}.jsonl"


def val_counts_path(study_dir: str | os.PathLike, config_id: str, arm: str, seed: int) -> Path:
    return Path(study_dir) / VAL_COUNTS_DIRNAME / f"{trial_name(config_id, arm, seed)}.json"


def checkpoint_paths(study_dir: str | os.PathLike, config_id: str, arm: str, seed: int) -> tuple[Path, Path]:
    """(weights ``.pth``, MMEngine config ``.py``) of a trial's kept final checkpoint."""
    stem = Path(study_dir) / CHECKPOINTS_DIRNAME / trial_name(config_id, arm, seed)
    return stem.with_suffix(".pth"), stem.with_suffix(".py")


def iter_record_paths(study_dir: str | os.PathLike) -> Iterator[Path]:
    """The record files of a study, sorted (half-written ones, ``.tmp-*.tmp``, never match)."""
    folder = Path(study_dir) / RECORDS_DIRNAME
    if folder.is_dir():
        yield from sorted(folder.glob("*.json"))


@dataclass(frozen=True)
class StudyPaths:
    """The paths of one study folder."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / SPEC_FILENAME

    @property
    def spec_history(self) -> Path:
        return self.root / SPEC_HISTORY_DIRNAME

    @property
    def start(self) -> Path:
        return self.root / START_FILENAME

    @property
    def sequential(self) -> Path:
        return self.root / SEQUENTIAL_FILENAME

    @property
    def plan(self) -> Path:
        return self.root / PLAN_FILENAME

    @property
    def records(self) -> Path:
        return self.root / RECORDS_DIRNAME

    @property
    def invalid_records(self) -> Path:
        return self.records / INVALID_DIRNAME

    @property
    def ray(self) -> Path:
        return self.root / RAY_DIRNAME

    @property
    def wandb(self) -> Path:
        return self.root / WANDB_DIRNAME

    @property
    def report(self) -> Path:
        return self.root / REPORT_DIRNAME

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILENAME

    def record(self, config_id: str, arm: str, seed: int) -> Path:
        return record_path(self.root, config_id, arm, seed)

    def launch_dir(self, stamp: str) -> Path:
        """Ray's experiment folder of the launch stamped ``stamp``."""
        return self.ray / f"launch-{stamp}"

    def launch_logs(self) -> list[Path]:
        """The launch logs, oldest first (by when they were written)."""
        return sorted(self.ray.glob(f"launch-*/{LAUNCH_FILENAME}"), key=lambda p: p.stat().st_mtime)

    def create(self) -> "StudyPaths":
        self.records.mkdir(parents=True, exist_ok=True)
        self.ray.mkdir(parents=True, exist_ok=True)
        return self


def read_plan(study_dir: str | os.PathLike) -> dict | None:
    """``plan.json`` of a study folder (``{"study", "configurations": {config_id: arm}, ...}``),
    or None if the folder has none (written by 0.3.0 or earlier, or never launched) or it is unreadable."""
    import json

    try:
        plan = json.loads((Path(study_dir) / PLAN_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(plan, dict) or not isinstance(plan.get("study"), str) \
            or not isinstance(plan.get("configurations"), dict):
        return None
    return plan


def study_name(study_dir: str | os.PathLike) -> str | None:
    """The name of the study a folder holds, as its last launch recorded it (``plan.json``);
    None for a folder whose launches predate plan.json (its records' study is not checked)."""
    plan = read_plan(study_dir)
    return plan["study"] if plan is not None else None


# --------------------------------------------------------------------------- spec -> study folder

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(value: str) -> bool:
    return _URI.match(value) is not None


# A variable whose name says it holds a secret is never copied into a path (which ends up
# in folder names, console lines, trial configs and records).
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "APIKEY", "API_KEY")
_SECRET_PARTS = frozenset({"KEY", "KEYS", "AUTH", "PASS", "PW", "COOKIE"})


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (``WANDB_API_KEY``,
    ``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``PGPASSWORD``...)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS) or bool(_SECRET_PARTS & set(upper.split("_")))


def expand_env_vars(value: str, source: str) -> str:
    """``$VAR``/``${VAR}`` in a path, and only what a path needs: an unset variable is an
    error (``SpecError`` starting with ``source``), not an empty string; a variable whose
    name says it is a secret is refused, never copied; a value with a control character
    (a newline...) is no path."""
    def sub(match: re.Match) -> str:
        var = match.group(1) or match.group(2)
        if looks_secret(var):
            raise SpecError(f"{source}: environment variable {var} looks like a secret (its name); a path "
                            f"never copies one: write the folder itself")
        if var not in os.environ:
            raise SpecError(f"{source}: environment variable {var} is not set (used in {value!r})")
        found = os.environ[var]
        if any(ord(c) < 32 or ord(c) == 127 for c in found):
            raise SpecError(f"{source}: environment variable {var} holds a control character (a newline?); "
                            f"expected a folder path")
        return found

    return _ENV_VAR.sub(sub, value)


def study_dir_from_storage(storage: str, name: str, *, base: str | os.PathLike | None = None,
                           source: str = "storage", expand_env: bool = True) -> Path:
    """The study folder ``<storage>/<name>``, absolute, the way ``launch`` makes it.

    ``storage`` as written in a spec: ``$VAR`` expanded when ``expand_env`` (a ``--storage``
    value was expanded by the shell already), ``~`` expanded, a relative path read from
    ``base`` (default: the current folder, where ``launch`` runs). A URI is refused: the
    study folder holds the records as files. Errors are one line starting with ``source``
    (e.g. ``"spec.yaml:3: storage"``).
    """
    value = expand_env_vars(storage, source) if expand_env else storage
    if is_uri(value):
        raise SpecError(f"{source}: {value!r} is a URI; the study folder holds trial records as files, "
                        f"so it must be a path (on a cluster: a shared filesystem mounted at the same "
                        f"path on every node, see docs/cluster.md)")
    folder = Path(os.path.expanduser(value))
    if not folder.is_absolute():
        folder = Path(base if base is not None else os.getcwd()) / folder
    try:
        return folder.resolve() / name
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13), ...
        reason = "a symlink loop" if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40 \
            else (exc.strerror or str(exc))
        raise SpecError(f"{source}: {value!r} cannot be resolved to a folder ({reason}); expected a folder "
                        f"path") from None
