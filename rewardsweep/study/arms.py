"""The arm kinds of a study: one declaration each, read by every part that treats arms.

An *arm* is what a trial trains: the reward configuration itself (``reward``), the
cross-entropy control paired with it (``mle``; its ``control_grid`` variants are ``mle``
trials with their own lr/optimizer) or the no-op reference (``noop``: the same batches
forward, no update). Expansion pairs each non-treatment arm with the reward
configurations by :attr:`ArmKind.shares`; the trial schema, the record check, the dry-run
table, the sequential scheduler, the LPT cost, the report's labels, order and plots read
the rest from here.

Adding an arm kind: one :class:`ArmKind` in :data:`KINDS` (how it pairs, its label, its
orders), what it trains in ``runners/trial.py`` when that is new, and (if the report
compares it) one ``Statistic`` (docs/architecture.md, "Where a change goes").
Stdlib only: the launch, the trials and the report all import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArmKind", "KINDS", "NAMES", "REWARD", "CONTROL", "REFERENCE", "kind", "paired", "named",
           "role", "links", "run_order", "report_order", "trains", "label_prefix"]


def _reward_cost(steps: float, config: Mapping[str, Any]) -> float:
    """Reward trials sample k labellings per image."""
    return steps * (1.0 + 0.5 * float(config.get("samples") or 1))


@dataclass(frozen=True)
class ArmKind:
    """One kind of arm. ``role``: "treatment" (the reward configurations), "control" (what
    they are compared with) or "reference" (a zero line for every arm)."""

    name: str                            # the record's ``arm``; W&B job_type; the trial name's middle part
    role: str
    label: str                           # report/W&B label prefix ("" for the treatment: its parameters name it)
    verdict: str                         # the summary's verdict column for its rows ("" for the treatment)
    describe: str                        # the dry-run table's parameters cell
    counted_as: str                      # the dry-run "per arm:" line
    run_order: int                       # which trials a sequential look queues first
    report_order: int                    # row order in the report's tables
    trains: str                          # "reward" | "cross_entropy" | "none": what runners/trial.py runs
    # pairing (non-treatment arms): which spec switch turns it on, which trial keys one
    # instance is shared by, the id field that names it on the configs it pairs with,
    # which parameter groups its table row shows and which groups take the schema default
    # (it does not use them, so they must not split instances)
    switch: tuple[str, str] | None = None
    shares: tuple[str, ...] = ()
    link: str | None = None
    shows: tuple[str, ...] = ()
    resets: tuple[str, ...] = ()
    variant_label: str | None = None     # a variant's label (``control_grid``: its own lr/optimizer)
    variant_describe: str | None = None
    table_params: bool = False           # its dry-run row lists the varied parameters after ``describe``
    cost: Callable[[float, Mapping[str, Any]], float] = field(default=lambda steps, config: steps)

    def enabled(self, spec: Any) -> bool:
        """Whether a spec runs this arm (the treatment always)."""
        return self.switch is None or getattr(spec, self.switch[0], None) == self.switch[1]


# What a control or reference is shared by: the start, the budget and (for the control)
# the schedule and optimizer. A key that must split them is added here.
_BUDGET = ("model", "data_root", "checkpoint", "pretrain", "steps", "eval_every", "batch_size", "precision")

REWARD = ArmKind(
    name="reward", role="treatment", label="", verdict="", describe="", counted_as="reward",
    run_order=1, report_order=2, trains="reward", cost=_reward_cost)
CONTROL = ArmKind(
    name="mle", role="control", label="control (mle)", verdict="control",
    describe="cross-entropy, same budget", counted_as="mle control",
    run_order=0, report_order=0, trains="cross_entropy", switch=("control", "mle"),
    shares=("model", "data_root", "checkpoint", "pretrain", "steps", "eval_every", "batch_size", "lr",
            "optimizer", "precision"),
    link="control_id", shows=("lr", "optimizer", "steps", "checkpoint", "batch_size", "pretrain", "precision"),
    variant_label="cross-entropy, own lr", variant_describe="cross-entropy, its own lr/optimizer",
    table_params=True)
REFERENCE = ArmKind(
    name="noop", role="reference", label="no-op reference", verdict="reference",
    describe="no-op reference: the same batches forward, no update", counted_as="no-op reference",
    run_order=2, report_order=1, trains="none", switch=("reference", "noop"),
    shares=_BUDGET, link="reference_id", shows=("steps", "checkpoint", "batch_size", "pretrain", "precision"),
    resets=("lr", "optimizer"), cost=lambda steps, config: steps / 3)   # forward only

KINDS: dict[str, ArmKind] = {a.name: a for a in (REWARD, CONTROL, REFERENCE)}
NAMES: tuple[str, ...] = tuple(KINDS)   # the arms a record or a trial config may name


def kind(name: str) -> ArmKind:
    return KINDS[name]


def paired() -> list[ArmKind]:
    """The arms expansion pairs with reward configurations, in pairing order (a later arm
    also names itself on the earlier arms' instances: a control has a reference_id)."""
    return [a for a in KINDS.values() if a.role != "treatment"]


def named(role: str) -> tuple[str, ...]:
    """The names of the arms with ``role`` (e.g. the controls, for ``isin``)."""
    return tuple(a.name for a in KINDS.values() if a.role == role)


def role(name: str) -> str:
    """An arm's role ("treatment", "control", "reference"); an unknown arm: ""."""
    return KINDS[name].role if name in KINDS else ""


def links() -> tuple[str, ...]:
    """The id fields by which a configuration names its paired arms (``control_id``, ...)."""
    return tuple(a.link for a in paired() if a.link)


def run_order(name: str) -> int:
    """Scheduling rank (lower first); an unknown arm last."""
    return KINDS[name].run_order if name in KINDS else len(KINDS)


def report_order(names: Iterable[str]) -> list[int]:
    """Report row rank of each arm name (lower first); an unknown arm last."""
    return [KINDS[n].report_order if n in KINDS else len(KINDS) for n in names]


def trains(name: str) -> str:
    """What an arm trains ("reward", "cross_entropy", "none"); an unknown arm: "none"."""
    return KINDS[name].trains if name in KINDS else "none"


def label_prefix(name: str) -> str:
    """The label words of an arm or of the ``"tuned"`` control variant ("" for the treatment)."""
    if name == "tuned":
        return CONTROL.variant_label or ""
    return KINDS[name].label if name in KINDS else ""
