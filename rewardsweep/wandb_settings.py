"""Where a W&B run goes and in which mode: the one rule for trials and the report's summary run.

Each setting from the first that gives it: a flag of the command (``launch --wandb`` for
the mode, ``report --wandb ENTITY/PROJECT``), the environment as W&B defines it
(``WANDB_MODE``, ``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_DIR``), the spec's ``wandb:``
block, the defaults (offline, project ``rewardsweep``, runs under ``<study>/wandb/``). The
environment beats the spec because it is what a W&B user sets for one session
(``WANDB_MODE=disabled``) while the spec is the study's lasting record; a flag beats both
because it is typed for this one command. ``online`` without an API key falls back to
offline with a note. No wandb import here (and never the key itself: W&B reads it when it
syncs), so the report can use it without a training stack.
"""

from __future__ import annotations

import netrc
import os
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

WANDB_MODES = ("offline", "online", "disabled")
DEFAULT_PROJECT = "rewardsweep"


@dataclass(frozen=True)
class WandbOptions:
    """Resolved on the driver, shipped to every trial (plain data: no key in here)."""

    mode: str = "offline"            # offline | online | disabled
    project: str = DEFAULT_PROJECT
    entity: str | None = None
    dir: str = "."                   # runs go to <dir>/wandb/
    tags: tuple[str, ...] = ()
    note: str | None = None          # why the mode differs from what was asked
    source: str = "default"          # where the mode came from: --wandb, WANDB_MODE, spec, default

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    @property
    def runs_dir(self) -> str:
        """Where W&B puts the offline runs (``offline-run-*``)."""
        return os.path.join(self.dir, "wandb")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def api_key_configured() -> bool:
    """True if W&B would find a key: ``WANDB_API_KEY`` or a netrc entry for the W&B host.

    Only answers yes/no; the key itself is never read into our process state.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


_MODE_ALIASES = {"dryrun": "offline", "run": "online"}  # W&B's older names


def resolve_options(spec_wandb: Any, cli_mode: str | None, study_dir: str | os.PathLike,
                    study_name: str, entity_project: str | None = None) -> WandbOptions:
    """The W&B settings of a launch (or a report): flag > environment > spec > default (module
    docstring). ``entity_project``: ``report --wandb ENTITY/PROJECT``, where the runs are."""
    from rewardsweep.errors import UserError

    settings = _as_dict(spec_wandb)
    env_mode = os.environ.get("WANDB_MODE") or None
    if env_mode is not None:
        env_mode = _MODE_ALIASES.get(env_mode.lower(), env_mode.lower())
        if env_mode not in WANDB_MODES:
            raise UserError(f"WANDB_MODE: {os.environ['WANDB_MODE']!r} is not one of {', '.join(WANDB_MODES)}")
    for source, mode in (("--wandb", cli_mode), ("WANDB_MODE", env_mode), ("spec", settings.get("mode")),
                         ("default", "offline")):
        if mode:
            break
    if mode not in WANDB_MODES:
        raise UserError(f"wandb.mode: {mode!r} is not one of {', '.join(WANDB_MODES)}")
    note = None
    if mode == "online" and not api_key_configured():
        mode = "offline"
        note = ("W&B online was asked for but no API key is configured (WANDB_API_KEY or `wandb login`); "
                "logging offline, upload later with `wandb sync`")
    tags = tuple(dict.fromkeys([study_name, *[str(t) for t in settings.get("tags") or ()]]))
    env_dir = os.environ.get("WANDB_DIR")
    flag_entity, flag_project = entity_project.split("/", 1) if entity_project else (None, None)
    return WandbOptions(mode=mode,
                        project=flag_project or os.environ.get("WANDB_PROJECT") or settings.get("project")
                        or DEFAULT_PROJECT,
                        entity=flag_entity or os.environ.get("WANDB_ENTITY") or settings.get("entity"),
                        dir=os.path.abspath(os.path.expanduser(env_dir)) if env_dir else str(study_dir),
                        tags=tags, note=note, source=source)


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return dict(vars(value))
