"""What the researcher sees while a study runs, and the summary at the end.

On a terminal: a live panel (done / running / failed / pending, ETA, the running trials
with their last evaluation). Elsewhere (a log file, CI, a test): one line per finished
or failed trial, so the output stays readable without cursor movement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rewardsweep.shell import invoked_as


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _fmt_miou(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


@dataclass
class _Running:
    since: float
    attempt: int
    step: int | None = None
    miou: float | None = None


@dataclass
class ProgressView:
    """A ``tune.TrialListener``: counts trials and estimates the time left."""

    total: int                         # trials to run in this launch
    slots: int = 1
    console: Console = field(default_factory=lambda: Console(stderr=True))
    live: bool | None = None           # None: live panel only on a terminal
    title: str = ""
    done: int = 0
    diverged: int = 0
    failed: int = 0
    retried: int = 0
    running: dict[str, _Running] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    _live: Live | None = None

    # ---- lifecycle
    def __enter__(self) -> "ProgressView":
        if self.live is None:
            self.live = self.console.is_terminal
        if self.live:
            self._live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False,
                              get_renderable=self.render)
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ---- listener
    def trial_started(self, key: str, attempt: int) -> None:
        self.running[key] = _Running(since=time.time(), attempt=attempt)

    def trial_progress(self, key: str, result: dict[str, Any]) -> None:
        run = self.running.get(key)
        if run is not None:
            run.step, run.miou = result.get("step"), result.get("miou")

    def trial_finished(self, key: str, result: dict[str, Any]) -> None:
        run = self.running.pop(key, None)
        if run is not None:
            self.durations.append(time.time() - run.since)
        status = result.get("status") or "finished"
        if status == "unsaved":  # the reason is in the summary, once
            self._line(f"[red]not saved[/] {key}: the study's storage is failing; stopping the launch")
        elif status == "not_run":
            self._line(f"[red]not run[/] {key}: {escape(result.get('error') or '')}; stopping the launch")
        elif status == "diverged":
            self.diverged += 1
            self._line(f"[yellow]diverged[/] {key}: {result.get('error') or ''}")
        else:
            self.done += 1
            self._line(f"[green]done[/] {key}  mIoU {_fmt_miou(result.get('miou_start'))} -> "
                       f"{_fmt_miou(result.get('miou_final'))}  ({_fmt_seconds(result.get('trial_seconds'))})")

    def trial_errored(self, key: str, error: str, retrying: bool, result: dict[str, Any]) -> None:
        self.running.pop(key, None)
        if retrying:
            self.retried += 1
            self._line(f"[yellow]retry[/] {key}: {error}")
            return
        self.failed += 1  # (not in the ETA: failures are often quick and would skew it)
        self._line(f"[red]failed[/] {key}: {error}")

    # ---- rendering
    @property
    def finished_count(self) -> int:
        return self.done + self.diverged + self.failed

    @property
    def pending(self) -> int:
        return max(0, self.total - self.finished_count - len(self.running))

    def eta(self) -> float | None:
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        now = time.time()
        left = self.pending * mean + sum(max(mean - (now - r.since), 0.0) for r in self.running.values())
        return left / max(1, self.slots)

    def counts_line(self) -> str:
        parts = [f"{self.done}/{self.total} finished", f"{len(self.running)} running", f"{self.pending} pending",
                 f"{self.failed} failed"]
        if self.diverged:
            parts.append(f"{self.diverged} diverged")
        if self.retried:
            parts.append(f"{self.retried} retried")
        parts.append(f"ETA {_fmt_seconds(self.eta())}")
        parts.append(f"{_fmt_seconds(time.time() - self.started_at)} elapsed")
        return ", ".join(parts)

    def render(self):
        head = Text.from_markup(f"[bold]{self.title}[/]: {self.counts_line()}")
        if not self.running:
            return head
        table = Table(box=None, show_header=True, pad_edge=False)
        for col in ("running trial", "step", "val mIoU", "for"):
            table.add_column(col)
        now = time.time()
        for key, run in sorted(self.running.items(), key=lambda kv: kv[1].since):
            table.add_row(key + (f" (attempt {run.attempt})" if run.attempt > 1 else ""),
                          "-" if run.step is None else str(run.step), _fmt_miou(run.miou),
                          _fmt_seconds(now - run.since))
        return Group(head, table)

    # ---- a sequential study's looks
    def add_planned(self, n: int) -> None:
        """A look made ``n`` more trials due (the total grows as configurations continue)."""
        self.total += n

    def note(self, text: str) -> None:
        """One line of news (a configuration decided), in the trial log."""
        self._line(escape(text))

    def _line(self, markup: str) -> None:
        if self._live is not None:
            self._live.console.print(markup)
        else:
            self.console.print(f"[{self.finished_count}/{self.total}] " + markup, highlight=False)


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """The end of a launch: counts, failures with their error line, where the study is."""
    c = summary["counts"]
    head = (f"[bold]{summary['study']}[/]: {c['finished']} finished, {c['diverged']} diverged, "
            f"{c['failed']} failed, {c['missing']} not run, of {c['planned']} trials")
    if summary.get("ran") is not None:
        head += f"  (this launch ran {summary['ran']} in {_fmt_seconds(summary.get('wall_s'))})"
    console.print(head, highlight=False)
    for line in summary.get("notes") or []:
        console.print(f"  {line}", highlight=False)
    failures = summary.get("failures") or []
    if failures:
        console.print("[bold]failures[/] (kept as records; `--retry-failed` reruns the failed ones):")
        for item in failures[:20]:
            console.print(f"  {item['status']:<8} {item['key']}: {item.get('error') or ''}", highlight=False,
                          markup=False)
        if len(failures) > 20:
            console.print(f"  ... and {len(failures) - 20} more", highlight=False)
    console.print(f"study folder: {summary['study_dir']}", highlight=False, soft_wrap=True)
    if summary.get("interrupted"):
        console.print(f"interrupted: finished trials are kept; run the same `{invoked_as()} launch` again to resume",
                      highlight=False)
    console.print(f"next: {invoked_as()} report {summary['study_dir']}", highlight=False, soft_wrap=True)
