"""The launch machinery without Ray: resume bookkeeping, start-once, W&B mode and logging,
the worker-side wrapper, progress. Fast (no training); the end-to-end tests are in
test_launch.py and test_cluster.py."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rewardsweep.errors import TrialDiverged, UserError
from rewardsweep.study import layout, records, resume
from rewardsweep.study.layout import StudyPaths
from rewardsweep.sweep import bookkeeping
from rewardsweep.sweep import tune as tune_mod
from rewardsweep.sweep import worker
from rewardsweep.sweep import wandb_log, wandb_offline
from rewardsweep.sweep.progress import ProgressView


@dataclass
class Plan:
    config_id: str
    arm: str
    seed: int

    @property
    def trial_name(self) -> str:
        return layout.trial_name(self.config_id, self.arm, self.seed)


def _record(study_dir: Path, plan: Plan, status: str, error: str | None = None) -> Path:
    mious = {"miou_start": 0.5, "miou_final": 0.52} if status == "finished" else {}
    return records.write_record(layout.record_path(study_dir, plan.config_id, plan.arm, plan.seed),
                                {"config_id": plan.config_id, "arm": plan.arm, "seed": plan.seed,
                                 "status": status, "error": error, **mious})


def _config(tmp_path: Path, **extra) -> dict:
    return {"study": "s", "study_dir": str(tmp_path / "s"), "config_id": "abc", "arm": "reward", "seed": 0,
            "model": "tiny-synthetic", "checkpoint": "auto", "data_root": None, "pretrain": None,
            "steps": 4, "start": {"miou": 0.5, "class_names": ["a", "b"]}, **extra}


def test_plan_state_resume_rules(tmp_path):
    paths = StudyPaths(tmp_path).create()
    plans = [Plan("c1", "reward", s) for s in range(6)]
    _record(tmp_path, plans[0], "finished")
    _record(tmp_path, plans[1], "diverged", "loss became nan")
    _record(tmp_path, plans[2], "failed", "RuntimeError: boom")
    _record(tmp_path, plans[3], "failed", None)              # interrupted, not a failure
    (paths.records / f"{plans[4].trial_name}.json").write_text("{not json")
    _record(tmp_path, Plan("gone", "reward", 0), "finished")  # no longer in the spec

    state = resume.plan_state(plans, paths)
    assert [p.seed for p in state.done] == [0, 1]
    assert [p.seed for p in state.failed_kept] == [2]
    assert [p.seed for p in state.todo] == [3, 4, 5]
    assert len(state.unreadable) == 1 and state.orphans == 1

    state = resume.plan_state(plans, paths, retry_failed=True)
    assert [p.seed for p in state.todo] == [2, 3, 4, 5] and [p.seed for p in state.retried_failed] == [2]


def test_start_resolved_once_and_reused(tmp_path):
    from rewardsweep.checkpoint_file import file_hash

    paths = StudyPaths(tmp_path).create()
    files = {None: tmp_path / "start.pth", 7: tmp_path / "start7.pth"}
    for iters, path in files.items():
        path.write_bytes(f"weights {iters}".encode())
    hashes = {iters: file_hash(path) for iters, path in files.items()}
    calls = []

    def fake_ensure_start(model, checkpoint, data_root, iters):
        calls.append((model, checkpoint, iters))
        return {"model": model, "checkpoint": str(files[iters]), "checkpoint_hash": file_hash(files[iters]),
                "dataset": "d", "miou": 0.5, "per_class_iou": [0.5], "class_names": ["a"], "cached": False}

    configs = [_config(tmp_path, seed=s) for s in range(3)] + [_config(tmp_path, pretrain={"iters": 7})]
    starts, computed = bookkeeping.resolve_starts(paths, configs, ensure_start=fake_ensure_start)
    assert computed == 2 and len(calls) == 2 and len(starts) == 2
    assert {c["start"]["checkpoint_hash"] for c in configs} == set(hashes.values())
    assert "cached" not in configs[0]["start"] and "request" not in configs[0]["start"]

    again = [_config(tmp_path)]
    _, computed = bookkeeping.resolve_starts(paths, again, ensure_start=fake_ensure_start)
    assert computed == 0 and len(calls) == 2 and again[0]["start"]["checkpoint_hash"] == hashes[None]
    files[None].unlink()                                       # cache gone: resolve again (same weights)
    files[None].write_bytes(b"weights None")
    _, computed = bookkeeping.resolve_starts(paths, [_config(tmp_path)], ensure_start=fake_ensure_start)
    assert computed == 0                                       # same bytes: the entry is still good
    files[None].write_bytes(b"weights None, one bit off")     # damaged: resolved again, and it is not the same
    with pytest.raises(UserError, match=r"this study's trials started from " + hashes[None]):
        bookkeeping.resolve_starts(paths, [_config(tmp_path)], ensure_start=fake_ensure_start)
    assert len(calls) == 3 and len(json.loads(paths.start.read_text())["starts"]) == 2


def test_a_study_folder_pins_its_start_when_the_cache_is_gone(tmp_path):
    """A study written when the preset pretrained 1000 iterations at lr 0.05 keeps that start
    after the default changed: with its checkpoint file gone, the start is pretrained again
    with the recipe start.json recorded (not today's default), and a different result is
    refused before any trial runs (its trials could never be pooled with the finished ones)."""
    paths = StudyPaths(tmp_path).create()
    recorded = {"request": {"model": "tiny-synthetic", "checkpoint": "auto", "data_root": None, "iters": None},
                "model": "tiny-synthetic", "checkpoint": str(tmp_path / "gone" / "start.pth"),
                "checkpoint_hash": "old0123456789abc", "dataset": "d", "miou": 0.62, "per_class_iou": [0.6],
                "class_names": ["a"], "pretrained": {"iters": 1000, "lr": 0.05, "batch_size": 8, "seed": 0,
                                                     "train_seconds": 58.0}}
    paths.start.write_text(json.dumps({"starts": [recorded]}))
    calls = []

    def fake_ensure_start(model, checkpoint, data_root, iters, lr=None, batch_size=None, seed=0):
        calls.append({"iters": iters, "lr": lr, "batch_size": batch_size, "seed": seed})
        path = tmp_path / "new" / "start.pth"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
        return {**{k: v for k, v in recorded.items() if k != "request"}, "checkpoint": str(path),
                "checkpoint_hash": result_hash[0]}

    result_hash = ["old0123456789abc"]
    configs = [_config(tmp_path)]
    bookkeeping.resolve_starts(paths, configs, ensure_start=fake_ensure_start)
    assert calls == [{"iters": 1000, "lr": 0.05, "batch_size": 8, "seed": 0}]
    assert configs[0]["start"]["checkpoint_hash"] == "old0123456789abc"
    (tmp_path / "new" / "start.pth").unlink()                  # gone again, and now it comes out different
    result_hash[0] = "new0123456789abc"
    with pytest.raises(UserError, match="pretraining it again gave checkpoint new0123456789abc, but this study's trials started from old0123456789abc"):
        bookkeeping.resolve_starts(paths, [_config(tmp_path)], ensure_start=fake_ensure_start)


def test_spec_copy_keeps_history(tmp_path):
    paths = StudyPaths(tmp_path / "study").create()
    spec = tmp_path / "a.yaml"
    spec.write_text("seeds: 2\n")
    assert bookkeeping.copy_spec(spec, paths) is None
    assert bookkeeping.copy_spec(spec, paths) is None                # unchanged: nothing moved
    spec.write_text("seeds: 3\n")
    moved = bookkeeping.copy_spec(spec, paths)
    assert moved is not None and moved.read_text() == "seeds: 2\n" and paths.spec.read_text() == "seeds: 3\n"


def test_write_lost_record(tmp_path):
    config = _config(tmp_path)
    lost = records.lost_record(config, {"baseline.kind": "none"}, "the worker died")
    path = records.write_record(layout.record_path(config["study_dir"], "abc", "reward", 0), lost)
    rec = records.read_record(path)
    assert rec["status"] == "failed" and rec["error"] == "the worker died" and rec["miou_start"] == 0.5
    assert records.record_problem(lost) is None and rec["finished_at"].endswith("+00:00")


def test_wandb_mode_resolution(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    opts = wandb_log.resolve_options({"mode": "online", "project": "p", "tags": ["x"]}, None, tmp_path, "study")
    assert opts.mode == "offline" and "no API key" in opts.note and opts.tags == ("study", "x")
    assert wandb_log.resolve_options({"mode": "offline"}, "disabled", tmp_path, "s").enabled is False
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password k3y\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_log.resolve_options({"mode": "online"}, None, tmp_path, "s").mode == "online"
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_API_KEY", "k")
    opts = wandb_log.resolve_options({}, "online", tmp_path, "s")
    assert opts.mode == "online" and "k" not in json.dumps(opts.to_dict()).replace('"', " ").split()
    with pytest.raises(UserError):
        wandb_log.resolve_options({"mode": "sometimes"}, None, tmp_path, "s")


def test_wandb_settings_flag_then_environment_then_spec(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    spec = {"mode": "offline", "project": "from-spec", "entity": "spec-team"}
    opts = wandb_log.resolve_options(spec, None, tmp_path / "study", "s")
    assert (opts.mode, opts.project, opts.entity, opts.source) == ("offline", "from-spec", "spec-team", "spec")
    assert opts.runs_dir == str(tmp_path / "study" / "wandb")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    opts = wandb_log.resolve_options(spec, None, tmp_path / "study", "s")
    assert (opts.mode, opts.project, opts.entity, opts.source) == ("disabled", "from-env", "env-team", "WANDB_MODE")
    assert opts.runs_dir == str(tmp_path / "elsewhere" / "wandb")
    assert wandb_log.resolve_options(spec, "offline", tmp_path, "s").mode == "offline"   # the flag wins
    monkeypatch.setenv("WANDB_MODE", "dryrun")                                          # W&B's old name
    assert wandb_log.resolve_options(spec, None, tmp_path, "s").mode == "offline"
    monkeypatch.setenv("WANDB_MODE", "loud")
    with pytest.raises(UserError, match="WANDB_MODE: 'loud' is not one of"):
        wandb_log.resolve_options(spec, None, tmp_path, "s")


def test_run_labels_are_the_reports_labels():
    from rewardsweep.sweep.expand import TrialPlan

    def plan(cid, arm, **params):
        return TrialPlan(config_id=cid, arm=arm, seed=0, params=params, config={})

    plans = [plan("c0", "mle", **{"lr.start": 0.01, "steps": 6}), plan("c1", "mle", **{"lr.start": 0.001, "steps": 6}),
             plan("r0", "reward", **{"baseline.kind": "greedy", "lr.start": 0.01, "steps": 6}),
             plan("r1", "reward", **{"baseline.kind": "none", "lr.start": 0.001, "steps": 6})]
    assert wandb_log.run_labels(plans) == {
        "c0": "control (mle) lr.start=0.01 [c0]", "c1": "control (mle) lr.start=0.001 [c1]",
        "r0": "baseline.kind=greedy lr.start=0.01 [r0]", "r1": "baseline.kind=none lr.start=0.001 [r1]"}
    assert wandb_log.run_labels(plans[2:3] + plans[:1]) == {"r0": "(no varied parameter) [r0]",
                                                            "c0": "control (mle) [c0]"}
    assert wandb_log.run_labels([plan("n0", "noop", steps=6)]) == {"n0": "no-op reference [n0]"}
    # what the reward arm ignores (None) is left out, keys in sorted order, numbers as the report writes them
    plans = [plan("r2", "reward", **{"baseline.kind": "sample_loo", "baseline.coef": None}),
             plan("r3", "reward", **{"baseline.kind": "batch_loo", "baseline.coef": 1.0})]
    assert wandb_log.run_labels(plans) == {"r2": "baseline.kind=sample_loo [r2]",
                                           "r3": "baseline.coef=1 baseline.kind=batch_loo [r3]"}


def test_non_finite_values_stay_out_of_the_history(tmp_path):
    opts = wandb_log.WandbOptions(mode="offline", dir=str(tmp_path)).to_dict()
    logger = wandb_log.TrialLogger(opts, _config(tmp_path)).start()
    logger.on_event({"kind": "step", "step": 1, "loss": 0.5, "lr": 0.1})
    logger.on_event({"kind": "step", "step": 2, "loss": float("nan"), "lr": 0.1})
    logger.finish({"status": "diverged", "error": "loss is nan"})
    (run,) = _complete_runs(tmp_path, 1)
    assert [h.get("train/loss") for h in run["history"] if "train/lr" in h] == [0.5, None]


def test_every_chart_has_the_training_step_as_its_x_axis(tmp_path, capsys):
    """define_metric, read back from the offline run (real W&B): ``step`` is the x-axis of
    train/* and val/*, val/miou keeps its last and best value; nothing warned."""
    opts = wandb_log.WandbOptions(mode="offline", dir=str(tmp_path)).to_dict()
    logger = wandb_log.TrialLogger(opts, _config(tmp_path)).start()
    logger.on_event({"kind": "step", "step": 1, "loss": 0.5, "lr": 0.1})
    logger.on_event({"kind": "eval", "step": 1, "miou": 0.7, "per_class_iou": [0.5, 0.9]})
    logger.on_event({"kind": "eval", "step": 2, "miou": 0.65, "per_class_iou": [0.4, 0.9]})
    logger.finish({"status": "finished"})
    (run,) = _complete_runs(tmp_path, 1)
    assert "W&B" not in capsys.readouterr().err
    assert run["metrics"]["train/*"]["step_metric"] == run["metrics"]["val/*"]["step_metric"] == "step"
    assert run["metrics"]["val/miou"] == {"step_metric": "step", "summary": ["max", "last"]}
    assert run["summary"]["val/miou"] == {"last": 0.65, "max": 0.7}
    assert all(h["step"] == h["_step"] for h in run["history"] if "val/miou" in h or "train/loss" in h)


# --------------------------------------------------------------------------- worker-side wrapper

def _stand_in(outcome: str):
    def trial(config, on_event=None):
        path = layout.record_path(config["study_dir"], config["config_id"], config["arm"], config["seed"])
        for step in (1, 2):
            on_event({"kind": "step", "step": step, "loss": 1.0 / step, "lr": 0.1})
        on_event({"kind": "eval", "step": 2, "miou": 0.6, "per_class_iou": [0.5, None]})
        status = {"ok": "finished", "nan": "diverged", "raise": "failed"}[outcome]
        rec = {"config_id": config["config_id"], "arm": config["arm"], "seed": config["seed"], "status": status,
               "error": None if outcome == "ok" else f"{outcome}!", "miou_start": 0.5, "miou_final": 0.6,
               "delta_miou": 0.1, "timings": {"train_s": 0.1}, "config": config}
        records.write_record(path, rec)
        if outcome == "nan":
            raise TrialDiverged("loss became nan", record=rec)
        if outcome == "raise":
            raise RuntimeError("boom")
        return rec
    return trial


def _complete_runs(folder: Path, n: int, timeout: float = 20.0) -> list[dict]:
    """``run.finish()`` returns before W&B's service writes the file's last block: wait for it."""
    deadline = time.time() + timeout
    while True:
        runs = [wandb_offline.read_offline_run(d) for d in sorted((folder / "wandb").glob("offline-run-*"))]
        if sum(r["exit_code"] is not None for r in runs) >= n or time.time() > deadline:
            return runs
        time.sleep(0.2)


def test_run_one_statuses_and_wandb_offline(tmp_path):
    opts = wandb_log.WandbOptions(mode="offline", dir=str(tmp_path / "s"), tags=("s",)).to_dict()
    reports = []
    final = worker.run_one({"config": _config(tmp_path), "params": {"k": 1}, "label": "k=1"}, _stand_in("ok"),
                             opts, report=reports.append)
    assert final["status"] == "finished" and final["record"]["miou_final"] == 0.6
    assert [r["final"] for r in reports] == [False, True] and reports[0]["miou"] == 0.6
    assert final["node_id"] is None  # not in Ray: nothing started
    import ray
    assert not ray.is_initialized()

    # a divergence returns normally (no retry), a failure raises (Ray retries it)
    nan = worker.run_one({"config": _config(tmp_path, seed=1), "params": {}}, _stand_in("nan"), opts)
    assert nan["status"] == "diverged"
    with pytest.raises(RuntimeError, match="boom"):
        worker.run_one({"config": _config(tmp_path, seed=2), "params": {}}, _stand_in("raise"), opts)

    runs = {r["config"]["seed"]: r for r in _complete_runs(tmp_path / "s", 3)}
    assert set(runs) == {0, 1, 2}
    ok = runs[0]
    # named by what varies, grouped by study + configuration; the config id in tags and config
    assert ok["name"] == "k=1 seed 0" and ok["group"] == "s: k=1" and ok["job_type"] == "reward"
    assert {"s", "reward", "abc", "finished"} <= set(ok["tags"]) and ok["config"]["config_id"] == "abc"
    assert "failed" in runs[2]["tags"] and "diverged" in runs[1]["tags"] and "finished" not in runs[2]["tags"]
    assert runs[1]["exit_code"] != 0 and runs[2]["exit_code"] != 0
    assert ok["config"]["params"] == {"k": 1} and ok["config"]["status"] == "finished"
    assert ok["config"]["runtime"]["pid"] > 0
    assert [(h["_step"], h.get("val/miou")) for h in ok["history"] if "val/miou" in h] == [(0, 0.5), (2, 0.6)]
    assert ok["history"][-1]["val/iou/a"] == 0.5 and "val/iou/b" not in ok["history"][-1]
    assert ok["summary"]["delta_miou"] == pytest.approx(0.1) and ok["exit_code"] == 0
    assert runs[1]["summary"]["status"] == "diverged"
    assert runs[2]["summary"]["status"] == "failed"
    assert runs[2]["summary"]["error"] == "raise!"


def test_offline_reader_spans_blocks(tmp_path):
    """History larger than one 32 KiB block of the .wandb file reads back whole."""
    opts = wandb_log.WandbOptions(mode="offline", dir=str(tmp_path)).to_dict()
    logger = wandb_log.TrialLogger(opts, _config(tmp_path)).start()
    for step in range(1, 801):
        logger.on_event({"kind": "step", "step": step, "loss": 1.0 / step, "lr": 0.1, "grad_norm": 2.0,
                         "reward_mean": 0.5, "reward_std": 0.1, "advantage_mean": 0.0, "advantage_std": 1.0})
    logger.finish({"status": "finished", "miou_final": 0.7, "miou_start": 0.5, "delta_miou": 0.2})
    (run,) = _complete_runs(tmp_path, 1)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert next(run_dir.glob("run-*.wandb")).stat().st_size > 3 * 32768
    steps = [h["_step"] for h in run["history"] if "train/loss" in h]
    assert steps == list(range(1, 801)) and run["summary"]["miou_final"] == 0.7


def test_trial_cost_orders_reward_before_control():
    reward = {"arm": "reward", "steps": 100, "batch_size": 8, "samples": 2}
    control = {"arm": "mle", "steps": 100, "batch_size": 8}
    assert tune_mod.trial_cost(reward) > tune_mod.trial_cost(control)
    assert tune_mod.trial_cost({**control, "steps": 400}) > tune_mod.trial_cost(reward)


def test_progress_counts_and_eta(capsys):
    from rich.console import Console

    view = ProgressView(total=4, slots=2, console=Console(file=None, force_terminal=False, width=120), live=False)
    with view:
        view.trial_started("a", 1)
        view.trial_started("b", 1)
        view.running["a"].since -= 10
        view.trial_finished("a", {"status": "finished", "miou_start": 0.5, "miou_final": 0.6, "trial_seconds": 10})
        view.trial_errored("b", "boom", retrying=True, result={})
        view.trial_started("b", 2)
        view.trial_errored("b", "boom", retrying=False, result={})
        assert (view.done, view.failed, view.retried, view.pending) == (1, 1, 1, 2)
        assert view.eta() == pytest.approx(10.0, abs=0.5)              # 2 pending x 10 s / 2 slots
        assert view.counts_line().startswith("1/4 finished, 0 running, 2 pending, 1 failed, 1 retried, ETA")


def test_one_launch_per_study_at_a_time(tmp_path):
    paths = StudyPaths(tmp_path / "s").create()
    with bookkeeping.StudyLock(paths):
        with pytest.raises(UserError, match="another launch of this study is running"):
            with bookkeeping.StudyLock(paths):
                pass
    with bookkeeping.StudyLock(paths):  # released
        pass
