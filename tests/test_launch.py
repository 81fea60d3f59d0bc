"""`rewardsweep launch` end to end: real Ray (local), real W&B (offline), real MMSeg trials.

Trials are smoke.yaml-sized (6 steps, batch 4): a few seconds each on 2 cores. The module
starts Ray in-process once (the interrupt test runs the CLI in subprocesses, which start
their own); the 2-node cluster test lives in test_cluster.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rewardsweep.study import layout, records
from rewardsweep.sweep.expand import expand
from rewardsweep.sweep.spec import load_spec
from rewardsweep.sweep.wandb_offline import read_offline_run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"
FAKE_KEY = "local-f4k3f4k3f4k3f4k3f4k3f4k3f4k3f4k3f4k3f4k3"


def spec_variant(folder: Path, name: str, **changes) -> Path:
    """smoke.yaml with ``changes`` (same trial shape unless changed), stored under ``folder``."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(name=name, storage=str(folder / "runs"), **changes)
    path = folder / f"{name}-{len(list(folder.glob(f'{name}*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def read_all(study_dir: Path) -> dict[str, dict]:
    return {p.stem: records.read_record(p) for p in layout.iter_record_paths(study_dir)}


def snapshot(study_dir: Path) -> dict[str, tuple[int, str]]:
    return {p.stem: (p.stat().st_mtime_ns, records.read_record(p)["started_at"])
            for p in layout.iter_record_paths(study_dir)}


def launch_logs(study_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((study_dir / "ray").glob("launch-*/rewardsweep-launch.json"))]


def wandb_runs(study_dir: Path, complete: int = 0, timeout: float = 20.0) -> list[dict]:
    """The study's offline W&B runs. ``run.finish()`` does not wait for W&B's service to
    write the file's last block, so wait (briefly) until ``complete`` runs have their exit."""
    deadline = time.time() + timeout
    while True:
        runs = [read_offline_run(d) for d in sorted((study_dir / "wandb").glob("offline-run-*"))]
        if sum(r["exit_code"] is not None for r in runs) >= complete or time.time() > deadline:
            return runs
        time.sleep(0.25)


def keys_of(spec_path: Path) -> set[str]:
    return {p.trial_name for p in expand(load_spec(spec_path))}


def run_key(run: dict) -> str:
    """The trial an offline W&B run belongs to (its name is for people: what varies + seed)."""
    cfg = run["config"]
    return layout.trial_name(cfg["config_id"], cfg["arm"], cfg["seed"])


# --------------------------------------------------------------------------- CLI, no Ray

def test_dry_run_prints_table_and_starts_nothing(tmp_path, capsys, monkeypatch):
    from rewardsweep import cli
    from rewardsweep.sweep import ray_cluster

    monkeypatch.setattr(ray_cluster, "init_ray", lambda *a, **k: pytest.fail("dry run started Ray"))
    assert cli.main(["launch", str(SMOKE), "--dry-run", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6 trials" in out and "greedy" in out
    assert not (tmp_path / "smoke").exists()


def test_bad_spec_fails_before_ray(tmp_path, capsys, monkeypatch):
    from rewardsweep import cli
    from rewardsweep.sweep import ray_cluster

    monkeypatch.setattr(ray_cluster, "init_ray", lambda *a, **k: pytest.fail("bad spec started Ray"))
    bad = spec_variant(tmp_path, "bad", seeds=-1)
    assert cli.main(["launch", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seeds" in err[0]
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- interrupt + resume (CLI)

def _cli(spec: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "rewardsweep.cli", "launch", str(spec), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_interrupted_launch_resumes_without_rerunning(tmp_path):
    spec = spec_variant(tmp_path, "interrupt", seeds=4)          # 3 configs x 4 seeds = 12 trials
    study = tmp_path / "runs" / "interrupt"
    planned = keys_of(spec)
    assert len(planned) == 12

    proc = _cli(spec)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        finished = [r for r in read_all(study).values() if r["status"] == "finished"] if study.exists() else []
        if len(finished) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"launch ended before it could be interrupted:\n{proc.communicate()[0]}"
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "resume" in out

    before = snapshot(study)
    done_before = {k for k, r in read_all(study).items() if records.is_done(r)}
    assert 3 <= len(done_before) < 12, out

    proc = _cli(spec)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out

    after = read_all(study)
    assert set(after) == planned                                   # nothing missing, nothing extra
    assert all(r["status"] == "finished" for r in after.values())
    for key in done_before:                                        # finished trials were not rerun
        path = study / "records" / f"{key}.json"
        assert (path.stat().st_mtime_ns, after[key]["started_at"]) == before[key]
    first, second = launch_logs(study)
    assert first["interrupted"] and not second["interrupted"]
    assert set(second["trials"]) == planned - done_before          # the second launch ran only the rest
    assert len(list((study / "ray").glob("launch-*"))) == 2        # one Ray experiment per launch
    # W&B: exactly one run per trial, finished; runs cut short by the interrupt are set aside
    runs = wandb_runs(study, complete=len(planned))
    assert sorted(run_key(r) for r in runs) == sorted(planned)
    assert all(r["summary"].get("status") == "finished" for r in runs)


# --------------------------------------------------------------------------- in-process, one Ray

@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module. A fake W&B key is in the environment of every worker:
    offline runs must not write it anywhere."""
    from rewardsweep.sweep import ray_cluster

    old = os.environ.get("WANDB_API_KEY")
    os.environ["WANDB_API_KEY"] = FAKE_KEY
    assert ray_cluster.init_ray(num_cpus=2)
    yield
    ray_cluster.shutdown_ray()
    if old is None:
        os.environ.pop("WANDB_API_KEY", None)
    else:
        os.environ["WANDB_API_KEY"] = old


@pytest.fixture(scope="module")
def smoke_study(ray_local, tmp_path_factory):
    from rewardsweep.sweep.launch import launch

    folder = tmp_path_factory.mktemp("smoke")
    old = os.environ.get("WANDB_PROJECT")
    os.environ["WANDB_PROJECT"] = "from-env"             # the environment beats the spec's project
    try:
        result = launch(SMOKE, storage=str(folder), wandb_mode="offline")
    finally:
        os.environ.pop("WANDB_PROJECT") if old is None else os.environ.__setitem__("WANDB_PROJECT", old)
    return folder, result


def _id(which: str) -> str:
    """smoke.yaml's config ids (pinned: tests/test_spec.py)."""
    plans = expand(load_spec(SMOKE))
    if which == "mle":
        return next(p.config_id for p in plans if p.arm == "mle")
    return next(p.config_id for p in plans if p.params.get("baseline.kind") == which)


def test_smoke_end_to_end(smoke_study):
    folder, result = smoke_study
    study = folder / "smoke"
    planned = keys_of(SMOKE)
    assert len(planned) == 6 and set(result.to_run) == planned and not result.interrupted

    recs = read_all(study)
    assert set(recs) == planned
    assert all(r["status"] == "finished" for r in recs.values()), {k: r["error"] for k, r in recs.items()}
    assert (study / "spec.yaml").read_text() == SMOKE.read_text()

    # shared work once: one start, resolved on the driver, the same in every trial
    starts = json.loads((study / "start.json").read_text())["starts"]
    assert len(starts) == 1
    assert {r["start"]["checkpoint_hash"] for r in recs.values()} == {starts[0]["checkpoint_hash"]}
    assert {r["miou_start"] for r in recs.values()} == {starts[0]["miou"]}
    # workers are reused between trials: torch/MMSeg/W&B imported once per worker
    log = launch_logs(study)[0]
    pids = {t["pid"] for t in log["trials"].values()}
    assert len(pids) <= result.slots == 2
    assert max(t["worker_trial_index"] for t in log["trials"].values()) >= 1

    # W&B: one offline run per trial, named and grouped by what varies, job_type = arm, study tag
    from rewardsweep.sweep.wandb_log import run_labels

    labels = run_labels(expand(load_spec(SMOKE)))
    # the report's labels: the same name for the same configuration in W&B and in the report
    from rewardsweep.analysis.collect import collect
    from rewardsweep.analysis.summary import summarize

    report = summarize(collect([study])).table
    assert labels == dict(zip(report["config_id"], report["label"]))
    assert set(labels.values()) == {f"baseline.kind=none [{_id('none')}]", f"baseline.kind=greedy [{_id('greedy')}]",
                                    f"control (mle) [{_id('mle')}]"}
    runs = wandb_runs(study, complete=len(planned))
    assert sorted(run_key(r) for r in runs) == sorted(planned)
    for run in runs:
        rec = recs[run_key(run)]
        label = labels[rec["config_id"]]
        assert run["name"] == f"{label} seed {rec['seed']}" and run["group"] == f"smoke: {label}"
        assert run["job_type"] == rec["arm"] and run["project"] == "from-env"
        assert {"smoke", "finished", rec["config_id"]} <= set(run["tags"])
        cfg = run["config"]
        assert (cfg["config_id"], cfg["arm"], cfg["seed"], cfg["status"]) == (
            rec["config_id"], rec["arm"], rec["seed"], "finished")
        assert cfg["steps"] == 6 and cfg["start"]["checkpoint_hash"] == rec["start"]["checkpoint_hash"]
        summary = run["summary"]
        for key in ("miou_start", "miou_final", "delta_miou", "status"):
            assert key in summary
        assert summary["miou_final"] == pytest.approx(rec["miou_final"])
        assert summary["delta_miou"] == pytest.approx(rec["delta_miou"])
        evals = [(h["_step"], h["val/miou"]) for h in run["history"] if "val/miou" in h]
        assert [s for s, _ in evals] == [0, 3, 6]
        assert all(h["step"] == h["_step"] for h in run["history"] if "val/miou" in h or "train/loss" in h)
        # the x-axis of every chart is the training step; val/miou keeps its final and best value
        metrics = run["metrics"]
        assert metrics["train/*"]["step_metric"] == metrics["val/*"]["step_metric"] == "step"
        assert metrics["val/miou"]["summary"] == ["max", "last"]
        assert summary["val/miou"] == {"last": pytest.approx(rec["miou_final"]), "max": pytest.approx(
            max(m for _, m in evals))}
        assert [h["_step"] for h in run["history"] if "train/loss" in h] == list(range(1, 7))
        if rec["arm"] == "reward":  # the treatment probe: history at the last step, summary
            assert [h["_step"] for h in run["history"] if "train/probe.step_share" in h] == [6]
            assert summary["treatment/step_share"] == pytest.approx(rec["treatment"]["step_share"])
        assert run["exit_code"] == 0

    # checkpoints: final: every finished trial kept its weights and rebuild config, hashed in its record
    for name, rec in recs.items():
        kept = rec["final_checkpoint"]
        assert kept["file"] == f"checkpoints/{name}.pth" and kept["config_file"] == f"checkpoints/{name}.py"
        assert hashlib.sha256((study / kept["file"]).read_bytes()).hexdigest() == kept["sha256"]
    assert not list((study / "checkpoints").glob(".tmp-*"))        # written atomically: no leftovers

    # the API key in the environment is written nowhere in the study folder
    for path in study.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_top_up_runs_only_new_seeds(smoke_study, tmp_path):
    from rewardsweep.sweep.launch import launch

    shared, _ = smoke_study
    folder = tmp_path / "runs"                   # a copy: the shared study stays as launched (any test order)
    shutil.copytree(shared / "smoke", folder / "smoke")
    study = folder / "smoke"
    before = snapshot(study)
    assert len(before) == 6
    raw = yaml.safe_load(SMOKE.read_text())
    raw["seeds"] = 3
    spec = tmp_path / "smoke.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))

    result = launch(spec, storage=str(folder), wandb_mode="disabled")
    new = keys_of(spec) - set(before)
    assert len(new) == 3 and all(k.endswith("seed2") for k in new)
    assert set(result.to_run) == new
    after = snapshot(study)
    assert set(after) == set(before) | new
    assert {k: after[k] for k in before} == before                    # untouched
    kept = {p.stem: p.stat().st_mtime_ns for p in (study / "checkpoints").glob("*.pth")}
    assert set(kept) == set(after)                                      # old checkpoints kept, new seeds added
    assert all(r["status"] == "finished" for r in read_all(study).values())
    assert (study / "spec-history").is_dir()                            # the 2-seed spec is kept

    experiments = len(list((study / "ray").glob("launch-*")))
    again = launch(spec, storage=str(folder), wandb_mode="disabled")   # nothing left: starts no experiment
    assert again.to_run == [] and len(list((study / "ray").glob("launch-*"))) == experiments


def test_a_kept_checkpoint_evaluates_to_its_recorded_miou_with_mmsegs_test_tool(smoke_study, tmp_path):
    """MMSeg's own tools/test.py, on the config and weights a smoke trial kept, gives the
    trial's recorded final mIoU (the same val split, PreciseIoUMetric)."""
    from tests.test_mmseg_plugin import _mmseg_tool, _run, mmseg_test_metrics

    folder, _ = smoke_study
    study = folder / "smoke"
    name = next(n for n, r in sorted(read_all(study).items()) if r["arm"] == "reward")
    rec = read_all(study)[name]
    cfg, weights = study / rec["final_checkpoint"]["config_file"], study / rec["final_checkpoint"]["file"]
    _run([str(_mmseg_tool("test.py")), str(cfg), str(weights), "--work-dir", str(tmp_path / "test")], tmp_path)
    assert mmseg_test_metrics(tmp_path / "test")["mIoU"] == pytest.approx(rec["miou_final"], abs=1e-9)
    import torch                                                        # and torch loads it weights-only
    assert set(torch.load(weights, weights_only=True)) == {"state_dict", "meta"}


def test_failed_and_diverged_trials_are_recorded(ray_local, tmp_path):
    from rewardsweep.sweep.launch import launch

    spec = spec_variant(tmp_path, "failures", seeds=3, grid={"baseline.kind": ["greedy"]}, retries=1)
    study = tmp_path / "runs" / "failures"
    reward = [p for p in expand(load_spec(spec)) if p.arm == "reward"]
    fail_key, nan_key = reward[1].trial_name, reward[2].trial_name

    def hook(plan, config):
        if plan.trial_name == fail_key:
            config["debug"] = {"raise_at_step": 2}
        elif plan.trial_name == nan_key:
            config["debug"] = {"nan_at_step": 2}

    result = launch(spec, config_hook=hook)
    recs = read_all(study)
    assert set(recs) == keys_of(spec)                                 # 6 trials, all recorded
    assert recs[fail_key]["status"] == "failed" and "forced to fail" in recs[fail_key]["error"]
    assert recs[nan_key]["status"] == "diverged" and "nan" in recs[nan_key]["error"].lower()
    others = {k: r for k, r in recs.items() if k not in (fail_key, nan_key)}
    assert len(others) == 4 and all(r["status"] == "finished" for r in others.values())
    # retried as configured (retries: 1 -> 2 attempts); a divergence is not retried
    assert result.outcomes[fail_key].attempts == 2 and result.outcomes[fail_key].state == "failed"
    assert result.outcomes[nan_key].attempts == 1 and result.outcomes[nan_key].state == "diverged"
    counts = result.summary["counts"]
    assert (counts["finished"], counts["failed"], counts["diverged"], counts["missing"]) == (4, 1, 1, 0)
    assert {f["key"] for f in result.summary["failures"]} == {fail_key, nan_key}
    runs = [r for r in wandb_runs(study, complete=7) if run_key(r) == nan_key]
    assert len(runs) == 1 and runs[0]["summary"]["status"] == "diverged"

    # a later launch keeps both (final results) and, like this one, exits 1 for them
    from rewardsweep import cli

    assert launch(spec).to_run == []
    assert cli.main(["launch", str(spec)]) == 1
    assert cli.main(["launch", str(spec), "--allow-failures"]) == 0
    # --retry-failed reruns only the failed one; a half-written run of that trial (a killed
    # driver leaves one) is set aside first, its two complete failed attempts stay
    fail = next(p for p in reward if p.trial_name == fail_key)
    stale = study / "wandb" / f"offline-run-20250101_000000-{fail.config_id}-reward-s{fail.seed}-dead00"
    stale.mkdir()
    (stale / "run-dead00.wandb").write_bytes(b"")
    rerun = launch(spec, retry_failed=True)
    assert rerun.to_run == [fail_key]
    assert not stale.exists() and (study / "wandb" / "interrupted" / stale.name).is_dir()
    attempts = [r for r in wandb_runs(study, complete=8) if run_key(r) == fail_key]
    assert sorted(r["summary"]["status"] for r in attempts) == ["failed", "failed", "finished"]
    assert read_all(study)[fail_key]["status"] == "finished"           # no debug hook this time


def test_storage_failing_mid_study_stops_once_and_a_relaunch_recovers(ray_local, tmp_path):
    """The record write of the first trial fails as on a full disk: no retry, no failed
    record, no further trial started, one line in the summary; the relaunch runs the rest."""
    import io

    from rich.console import Console

    from rewardsweep.sweep.launch import launch

    spec = spec_variant(tmp_path, "full", retries=2)
    study = tmp_path / "runs" / "full"
    first = max(expand(load_spec(spec)), key=lambda p: p.arm == "reward").trial_name  # runs first (LPT)

    def hook(plan, config):
        if plan.trial_name == first:
            config["debug"] = {"write_error": "ENOSPC"}

    out = io.StringIO()
    result = launch(spec, config_hook=hook, wandb_mode="disabled", console=Console(file=out, width=200))
    text = out.getvalue()
    assert result.storage_error and "No space left on device (ENOSPC)" in result.storage_error
    assert str(study / "records" / f"{first}.json") in result.storage_error
    assert result.outcomes[first].state == "unsaved" and result.outcomes[first].attempts == 1  # not retried
    assert [line for line in text.splitlines() if "No space left" in line] == [
        line for line in text.splitlines() if line.strip().startswith("storage failing, launch stopped:")]
    assert len([line for line in text.splitlines() if "No space left" in line]) == 1
    assert "Traceback" not in text
    counts = result.summary["counts"]
    assert counts["failed"] == 0 and counts["missing"] >= 4, counts   # nothing recorded as failed
    assert first not in read_all(study)
    before = snapshot(study)

    again = launch(spec, wandb_mode="disabled")                       # storage "fixed"
    assert not again.storage_error and first in again.to_run
    after = read_all(study)
    assert set(after) == keys_of(spec) and all(r["status"] == "finished" for r in after.values())
    assert {k: v for k, v in snapshot(study).items() if k in before} == before   # not rerun


# --------------------------------------------------------------------------- fault matrix

def _trial_dirs() -> dict[Path, int]:
    """Trial temp folders of this host -> the pid that owns them."""
    import socket
    import tempfile

    prefix = f"rewardsweep-trial-{socket.gethostname()}-"
    found = {}
    for path in Path(tempfile.gettempdir()).glob(prefix + "*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit():
            found[path] = int(pid)
    return found


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if predicate():
            return
        time.sleep(0.1)
    out = proc.communicate(timeout=30)[0] if proc.poll() is not None else ""
    pytest.fail(f"launch ended (or took too long) before {what}:\n{out}")


def test_driver_killed_during_pretraining_and_mid_trials_then_corrupt_record(tmp_path):
    """kill -9 of the driver while it pretrains, then while trials run; a record is then
    corrupted and a half-written one left behind. The next launch cleans up, reruns
    exactly what is missing or invalid, says so naming the file, and loses nothing."""
    spec = spec_variant(tmp_path, "kills", wandb={"mode": "disabled"})
    study = tmp_path / "runs" / "kills"
    cache = tmp_path / "cache"
    env = {"REWARDSWEEP_CACHE": str(cache)}
    planned = keys_of(spec)

    def cli(*extra):
        full = dict(os.environ, PYTHONUNBUFFERED="1", **env)
        return subprocess.Popen([sys.executable, "-m", "rewardsweep.cli", "launch", str(spec), *extra], cwd=ROOT,
                                env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # 1. killed while pretraining: its temp folder stays behind, nothing else is written
    proc = cli()
    _wait_for(lambda: list((cache / "checkpoints").glob("pretrain-*")), proc, 240, "pretraining started")
    proc.kill()
    proc.wait(timeout=30)
    assert list((cache / "checkpoints").glob("pretrain-*")) and not read_all(study)

    # 2. killed mid-trials (kill -9: no chance to clean up or write anything)
    dirs_before = set(_trial_dirs())
    proc = cli()
    _wait_for(lambda: sum(r["status"] == "finished" for r in read_all(study).values()) >= 2, proc, 300,
              "two trials finished")
    proc.kill()
    proc.wait(timeout=30)
    assert not list((cache / "checkpoints").glob("pretrain-*"))    # the relaunch cleaned pretraining's
    done = {k for k, r in read_all(study).items() if r["status"] == "finished"}
    assert 2 <= len(done) < len(planned)

    # 3. one finished record corrupted; a half-written record of a killed writer
    corrupt = sorted(done)[0]
    (study / "records" / f"{corrupt}.json").write_bytes(os.urandom(300))
    partial = study / "records" / ".tmp-killed.json.tmp"
    partial.write_text('{"config_id": ')
    os.utime(partial, (time.time() - 3600, time.time() - 3600))
    kept = {k: (study / "records" / f"{k}.json").stat().st_mtime_ns for k in done - {corrupt}}
    from rewardsweep.storage import _alive

    left = {path: pid for path, pid in _trial_dirs().items() if path not in dirs_before}
    deadline = time.time() + 60   # the killed driver's Ray workers exit once they notice
    while time.time() < deadline and any(_alive(pid) for pid in left.values()):
        time.sleep(0.2)
    # only folders whose owner is dead are the relaunch's to remove (on a shared machine other
    # users' live trials write beside ours)
    left = {path: pid for path, pid in left.items() if not _alive(pid)}

    proc = cli()
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, out
    after = read_all(study)
    assert set(after) == planned and all(r["status"] == "finished" for r in after.values())
    for key, mtime in kept.items():                                  # not rerun
        assert (study / "records" / f"{key}.json").stat().st_mtime_ns == mtime
    warning = [ln for ln in out.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and str(study / "records" / f"{corrupt}.json") in warning[0], out
    assert len(list((study / "records" / "invalid").iterdir())) == 1
    assert not partial.exists()
    assert "Traceback" not in out
    assert not any(path.exists() for path in left)                  # killed workers' temp folders removed


def test_worker_killed_mid_trial_gets_a_failed_record(ray_local, tmp_path):
    from rewardsweep.sweep.launch import launch

    spec = spec_variant(tmp_path, "oom", grid={"baseline.kind": ["greedy"]})
    study = tmp_path / "runs" / "oom"
    victim = next(p for p in expand(load_spec(spec)) if p.arm == "reward").trial_name

    def hook(plan, config):
        if plan.trial_name == victim:
            config["debug"] = {"kill_at_step": 2}

    result = launch(spec, config_hook=hook, wandb_mode="disabled")
    recs = read_all(study)
    assert set(recs) == keys_of(spec)                                # nothing lost
    assert recs[victim]["status"] == "failed" and recs[victim]["error"]
    assert "without writing a record" in recs[victim]["written_by"]
    assert all(r["status"] == "finished" for k, r in recs.items() if k != victim)
    assert result.summary["counts"]["failed"] == 1
    assert {f["key"] for f in result.summary["failures"]} == {victim}
