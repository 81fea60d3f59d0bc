"""The dry-run trial table: what a launch would run, without starting anything.

    rewardsweep launch search_spaces/baseline.yaml --dry-run

One row per configuration (seeds collapsed, e.g. ``0-4``), the parameters that vary
between configurations, the fixed ones above the table, and the counts below it: trials
in all, per arm, and how many duplicate grid points were removed. At most 100 columns.
Pure Python (rich): no Ray, no torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rewardsweep.study import arms
from rewardsweep.study.layout import trial_name
from rewardsweep.sweep.expand import Expansion, TrialPlan, expand_study
from rewardsweep.formatting import format_value
from rewardsweep.config.spec_schema import Spec
from rewardsweep.sweep.spec import load_study

__all__ = ["MAX_WIDTH", "collapse_seeds", "format_value", "summary_lines", "render", "dry_run"]

MAX_WIDTH = 100


def collapse_seeds(seeds: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 7, 9, 10]`` -> ``"0-3,7,9-10"``."""
    values = sorted(set(int(s) for s in seeds))
    if not values:
        return "-"
    parts: list[str] = []
    start = prev = values[0]
    for s in values[1:] + [None]:  # type: ignore[list-item]
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ",".join(parts)


def _configs(trials: list[TrialPlan]) -> list[tuple[TrialPlan, list[int]]]:
    """One entry per (config_id, arm) in order, with its seeds."""
    order: dict[tuple[str, str], tuple[TrialPlan, list[int]]] = {}
    for t in trials:
        key = (t.config_id, t.arm)
        if key not in order:
            order[key] = (t, [])
        order[key][1].append(t.seed)
    return list(order.values())


def _split_params(configs: list[tuple[TrialPlan, list[int]]]) -> tuple[list[str], dict[str, str]]:
    """(keys whose value differs between reward configs, {key: shown value} for the others).

    A key that takes one value wherever it is used (and is ignored elsewhere) is not a
    column: it goes to the "same in every configuration" line, marked "where used".
    """
    rewards = [t for t, _ in configs if t.arm == arms.REWARD.name] or [t for t, _ in configs]
    keys: list[str] = []
    for t in rewards:
        for k in t.params:
            if k not in keys:
                keys.append(k)
    varied: list[str] = []
    fixed: dict[str, str] = {}
    for k in keys:
        values = [t.params.get(k) for t in rewards]
        used = {repr(v) for v in values if v is not None}
        if len(used) > 1:
            varied.append(k)
        elif used:
            value = next(v for v in values if v is not None)
            fixed[k] = format_value(value) + (" (where used)" if None in values else "")
    return varied, fixed


def summary_lines(spec: Spec, expansion: Expansion, done: set[str] | None = None) -> list[str]:
    """The counts under the table (plain text, one fact a line)."""
    n = len(expansion.trials)
    configs = sum(expansion.configs.values())
    seeds = len(expansion.seeds)
    lines = [f"{n} trial{'s' if n != 1 else ''}: {configs} configuration{'s' if configs != 1 else ''} "
             f"x {seeds} seed{'s' if seeds != 1 else ''} ({collapse_seeds(expansion.seeds)})"]
    def configs_(n: int) -> str:
        return f"{n} config{'s' if n != 1 else ''}"

    per_arm = []
    for kind in arms.KINDS.values():
        if expansion.configs.get(kind.name):
            per_arm.append(f"{kind.counted_as} {expansion.count(kind.name)} trials "
                           f"({configs_(expansion.configs[kind.name])})")
        elif kind.role == "control":
            per_arm.append(f"no control arm ({kind.switch[0]}: none)")
    lines.append("per arm: " + ", ".join(per_arm))
    pts = expansion.points
    if expansion.duplicates:
        lines.append(f"{expansion.duplicates} duplicate configuration{'s' if expansion.duplicates != 1 else ''} "
                     f"removed ({pts} grid/sample points -> {expansion.reward_configs} distinct; "
                     f"a key the chosen settings ignore made them identical: each runs once)")
    else:
        lines.append(f"no duplicates ({pts} grid/sample point{'s' if pts != 1 else ''})")
    if done is not None:
        recorded = sum(1 for t in expansion.trials if t.trial_name in done)
        lines.append(f"{recorded} already recorded, {n - recorded} to run")
    return lines


def _params_cell(plan: Any, kind: Any, tuned: bool, varied: list[str], control_grid_keys: list[str]) -> str:
    """The parameters column of one row: a treatment's varied values; a control's (and a
    control_grid variant's) own; other arms, what they are."""
    if kind.role == "treatment":
        return " ".join(f"{k}={format_value(plan.params.get(k))}" for k in varied)
    if kind.table_params:
        keys = varied + [k for k in control_grid_keys if k not in varied]
        shown = [f"{k}={format_value(plan.params[k])}" for k in keys if k in plan.params]
        return (kind.variant_describe if tuned else kind.describe) + (": " + " ".join(shown) if shown else "")
    return kind.describe


def render(spec: Spec, expansion: Expansion | None = None, *, console: Console | None = None,
           done: set[str] | None = None) -> None:
    """Print the trial table of ``spec`` (``done``: trial names already recorded)."""
    expansion = expansion if expansion is not None else expand_study(spec)
    console = console or Console(highlight=False)
    width = min(MAX_WIDTH, console.width)

    def say(renderable: Any) -> None:
        console.print(renderable, width=width)
    configs = _configs(expansion.trials)
    varied, fixed = _split_params(configs)
    control_grid_keys = list(dict.fromkeys(leaf for values in spec.control_grid.values()
                                           for a in values for leaf in a))

    head = Text()
    head.append(f"study {spec.name}", style="bold")
    head.append(f"  ({spec.source})")
    say(head)
    if spec.description:
        say(Text(" ".join(spec.description.split()), style="italic"))
    facts = [f"model {spec.model_ref}"]
    if spec.data_root_ref:
        facts.append(f"data_root {spec.data_root_ref}")
    facts += [f"eval every {spec.eval_every}", f"resources cpu {spec.resources['cpu']:g} gpu "
              f"{spec.resources['gpu']:g}", f"study folder {spec.study_dir}"]
    say(Text(" | ".join(facts)))
    if fixed:
        say(Text("same in every configuration: " + ", ".join(
            f"{k}={v}" for k, v in fixed.items())))

    table = Table(show_lines=False, pad_edge=False, expand=False, box=None, header_style="bold")
    table.add_column("config", no_wrap=True)
    table.add_column("arm", no_wrap=True)
    table.add_column("seeds", no_wrap=True)
    if arms.CONTROL.enabled(spec):
        table.add_column("control", no_wrap=True)
    table.add_column("parameters" if varied else "", overflow="fold")
    for plan, seeds in configs:
        label = collapse_seeds(seeds)
        if done is not None:
            left = sum(1 for s in seeds if trial_name(plan.config_id, plan.arm, s) not in done)
            label += f" ({left} to run)" if left else " (done)"
        row = [plan.config_id, plan.arm, label]
        kind = arms.kind(plan.arm)
        tuned = kind is arms.CONTROL and plan.control_id != plan.config_id
        if arms.CONTROL.enabled(spec):
            row.append("(self)" if kind is arms.CONTROL and not tuned else (plan.control_id or "-"))
        row.append(_params_cell(plan, kind, tuned, varied, control_grid_keys))
        table.add_row(*row)
    say(table)
    for line in summary_lines(spec, expansion, done):
        say(Text(line))
    if any(plan.params.get(k, 0) is None for plan, _ in configs for k in varied if plan.arm == arms.REWARD.name):
        say(Text("'-': not used by that configuration's settings (ignored, so not varied)"))


def dry_run(spec_path: str | os.PathLike, *, storage: str | None = None, wandb_mode: str | None = None,
            max_concurrent: int | None = None, file: IO[str] | None = None,
            done: set[str] | None = None) -> int:
    """Load, validate and expand a spec, print its trial table; start nothing. Returns 0.

    Raises :class:`rewardsweep.errors.SpecError` (one line) for a bad spec; the CLI turns it
    into ``rewardsweep: error: ...`` on stderr and exit status 2.
    """
    study = load_study(spec_path, storage=storage, wandb_mode=wandb_mode, max_concurrent=max_concurrent)
    out = file or sys.stdout
    width = MAX_WIDTH
    if file is None:
        width = min(MAX_WIDTH, Console().width)
    console = Console(file=out, width=width, highlight=False,
                      force_terminal=False if file is not None else None)
    render(study.spec, study.expansion, console=console, done=done)
    return 0
