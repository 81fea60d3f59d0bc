"""Which kept checkpoints the report names: the best configuration's, one per seed.

A study with ``checkpoints: final`` keeps every finished trial's final weights
(``<study>/checkpoints/<trial>.pth``) and the MMEngine config that rebuilds the model
(``<trial>.py``, see :mod:`rewardsweep.runners.final_checkpoint`). The report lists those of
the best reward configuration: the first reward row of the summary table, i.e. the
highest mean paired difference against its control (the highest mean delta mIoU where
there is no control). Every other configuration's are in ``trials.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rewardsweep.analysis.collect import Collection
from rewardsweep.analysis.formats import pts
from rewardsweep.analysis.summary import Summary
from rewardsweep.study import arms as kinds


@dataclass(frozen=True)
class BestCheckpoints:
    label: str                 # the configuration's label
    folder: Path               # where the files are (<study>/checkpoints)
    table: pd.DataFrame        # seed, final mIoU, weights, config, sha256 (one row per kept seed)

    def paths(self) -> list[str]:
        return [str(self.folder / name) for name in self.table["weights"]]


def best_checkpoints(summary: Summary, coll: Collection) -> BestCheckpoints | None:
    """The kept checkpoints of the best reward configuration; None when it kept none."""
    t = summary.table
    rewards = t[t["arm"].isin(kinds.named("treatment")) & (t["n_finished"] > 0)]
    trials = coll.trials
    if rewards.empty or "final_checkpoint" not in trials:
        return None
    best = rewards.iloc[0]
    mine = trials[(trials["config_id"] == best["config_id"]) & trials["arm"].isin(kinds.named("treatment"))
                  & (trials["status"] == "finished") & trials["final_checkpoint"].notna()].sort_values("seed")
    if mine.empty:
        return None
    files = [Path(p) for p in mine["final_checkpoint"]]
    table = pd.DataFrame({
        "seed": mine["seed"].to_numpy(),
        "final mIoU": [pts(x, False) for x in mine["miou_final"]],
        "weights": [f.name for f in files],
        "config": [f.with_suffix(".py").name for f in files],
        "sha256": [str(h)[:16] if isinstance(h, str) else "–" for h in mine["final_checkpoint_sha256"]],
    })
    return BestCheckpoints(str(best["label"]), files[0].parent, table)


def test_command(config: str | Path, weights: str | Path) -> str:
    """MMSeg's own evaluation of a kept checkpoint (its tools/test.py), found without importing MMSeg."""
    import importlib.util

    spec = importlib.util.find_spec("mmseg")
    tool = (Path(spec.origin).parent / ".mim" / "tools" / "test.py") if spec and spec.origin else None
    tool_text = str(tool) if tool is not None and tool.is_file() else "<mmseg>/.mim/tools/test.py"
    return f"python {tool_text} {config} {weights}"
