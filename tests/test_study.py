"""The study contract (``rewardsweep.study``): atomic writes, timestamps, trial names,
records and their constructors, what is left to run, and where a spec's study folder is."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from rewardsweep.errors import SpecError, TrialDiverged, TrialFailed, trial_error
from rewardsweep.study import layout, records, resume
from rewardsweep.study.atomic import atomic_write, atomic_write_json
from rewardsweep.study.synthetic import synthetic_record
from rewardsweep.study.timestamps import parse_timestamp, timestamp_key, utc_now


@dataclass
class Plan:
    config_id: str
    arm: str
    seed: int


# --------------------------------------------------------------------------- atomic writes

def test_atomic_write_leaves_no_temporary_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = atomic_write_json(tmp_path / "start.json", {"v": 1})
    def refuse(src, dst):
        raise OSError(28, "No space left on device", str(dst))
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        atomic_write_json(path, {"v": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"v": 1}       # the old file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["start.json"]


def test_a_value_json_cannot_hold_touches_no_file(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"v": object()})
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_bytes_and_text_as_given(tmp_path):
    data = "seeds: 3  # ünïcode\n".encode() + b"\xff"
    assert atomic_write(tmp_path / "spec.yaml", data).read_bytes() == data
    assert atomic_write(tmp_path / "a" / "b.txt", "x\n").read_text() == "x\n"   # creates the folder


def test_a_half_written_record_is_never_read_as_a_record(tmp_path):
    folder = tmp_path / layout.RECORDS_DIRNAME
    folder.mkdir()
    stale = folder / ".tmp-c1-reward-seed0.json-abcd.tmp"
    stale.write_text("{")
    os.utime(stale, (1, 1))
    assert list(layout.iter_record_paths(tmp_path)) == []
    assert records.remove_partial_writes(tmp_path) == 1 and not stale.exists()


# --------------------------------------------------------------------------- timestamps

def test_utc_now_is_iso_utc_to_the_second():
    stamp = utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", stamp), stamp
    age = dt.datetime.now(dt.timezone.utc) - parse_timestamp(stamp)
    assert dt.timedelta(0) <= age < dt.timedelta(seconds=5)


def test_old_local_time_and_new_utc_timestamps_order_as_times():
    old_local = "2026-12-01T13:30:00+0200"    # time.strftime("%Y-%m-%dT%H:%M:%S%z"), 11:30 UTC
    new_utc = "2026-12-01T12:00:00+00:00"
    assert old_local > new_utc                 # as text: wrong
    assert timestamp_key(old_local) < timestamp_key(new_utc)
    assert timestamp_key(None) == timestamp_key("not a time") < timestamp_key(old_local)  # missing: oldest
    assert timestamp_key("2025-01-01T00:00:00") == timestamp_key("2025-01-01T00:00:00+00:00")  # no offset: UTC


def test_the_report_keeps_the_newest_of_two_records_across_formats(tmp_path):
    """A top-up in two folders: the same trial finished twice; the later one wins, whatever
    the format of its ``finished_at`` and whichever file is newer on disk."""
    from rewardsweep.analysis.collect import collect

    def write(folder: Path, finished_at: str, miou_final: float) -> Path:
        rec = synthetic_record(study="s", config_id="c1", arm="reward", seed=0, control_id=None,
                               params={}, miou_start=0.5, miou_final=miou_final, finished_at=finished_at)
        return records.write_record(layout.record_path(folder, "c1", "reward", 0), rec)

    later = write(tmp_path / "a", "2026-12-01T12:00:00+00:00", 0.61)
    earlier = write(tmp_path / "b", "2026-12-01T13:30:00+0200", 0.55)
    os.utime(later, (1_600_000_000, 1_600_000_000))     # the earlier trial's file is newer on disk
    trials = collect([tmp_path / "a", tmp_path / "b"]).trials
    assert len(trials) == 1 and trials["miou_final"].iloc[0] == pytest.approx(0.61)
    assert earlier.exists()


# --------------------------------------------------------------------------- names and paths

@pytest.mark.parametrize("config_id, arm, seed", [("3f2a9c1d", "reward", 0), ("ab-12", "mle", 17),
                                                  ("x", "noop", 3)])
def test_trial_name_round_trip(tmp_path, config_id, arm, seed):
    name = layout.trial_name(config_id, arm, seed)
    assert layout.parse_trial_name(name) == (config_id, arm, seed)
    paths = layout.StudyPaths(tmp_path)
    assert paths.record(config_id, arm, seed).stem == name
    assert layout.diagnostics_path(tmp_path, config_id, arm, seed).name == f"{name}.jsonl"
    assert layout.val_counts_path(tmp_path, config_id, arm, seed).parent.name == layout.VAL_COUNTS_DIRNAME
    with pytest.raises(ValueError, match="not a trial name"):
        layout.parse_trial_name(f"{config_id}-{arm}-{seed}")


# --------------------------------------------------------------------------- records

def _sweep_config(tmp_path: Path) -> dict:
    return {"study": "s", "study_dir": str(tmp_path), "config_id": "abc", "control_id": "ctl", "arm": "reward",
            "seed": 2, "estimator": "reinforce",
            "start": {"checkpoint": "/c.pth", "checkpoint_hash": "h", "dataset": "d", "miou": 0.5,
                      "per_class_iou": [0.4, 0.6], "class_names": ["a", "b"]}}


def test_a_lost_record_is_a_valid_failed_record(tmp_path):
    config = _sweep_config(tmp_path)
    lost = records.lost_record(config, {"lr.start": 0.1}, "the worker died", host="node7")
    assert records.record_problem(lost) is None and not records.is_done(lost)
    path = records.write_record(layout.record_path(tmp_path, "abc", "reward", 2), lost)
    back = records.read_record(path)
    assert back["status"] == "failed" and back["error"] == "the worker died" and back["host"] == "node7"
    assert back["start"] == {"checkpoint": "/c.pth", "checkpoint_hash": "h", "dataset": "d"}
    assert back["miou_start"] == 0.5 and back["control_id"] == "ctl" and back["params"] == {"lr.start": 0.1}
    assert back["finished_at"].endswith("+00:00")


def test_a_trial_record_starts_failed_and_becomes_valid_when_finished(tmp_path):
    rec = records.trial_record(_sweep_config(tmp_path), {"lr.start": 0.1}, host="h")
    assert rec["status"] == "failed" and rec["estimator"] == "reinforce" and rec["started_at"].endswith("+00:00")
    assert records.record_problem(rec) is None
    rec["status"] = "finished"
    assert "miou_start" in records.record_problem(rec)
    rec.update(miou_start=0.5, miou_final=0.52)
    assert records.record_problem(rec) is None and records.is_done(rec)
    control = records.trial_record({**_sweep_config(tmp_path), "arm": "mle"}, {}, host="h")
    assert control["estimator"] == "mle"


def test_synthetic_records_pass_the_record_rule():
    for status, final in (("finished", 0.6), ("failed", None), ("diverged", None)):
        rec = synthetic_record(study="s", config_id="c", arm="reward", seed=1, control_id="m",
                               params={"baseline.kind": "none"}, miou_start=0.5, miou_final=final,
                               status=status)
        assert records.record_problem(rec) is None
        assert rec["curve"][0] == {"step": 0, "miou": 0.5}


def test_a_trial_error_carries_its_record_through_a_chain():
    rec = {"status": "diverged"}
    try:
        try:
            raise TrialDiverged("loss became nan", record=rec)
        except TrialDiverged as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as outer:
        found = trial_error(outer)
    assert isinstance(found, TrialDiverged) and found.record is rec
    assert trial_error(ValueError("x")) is None
    assert TrialFailed("boom").record is None


# --------------------------------------------------------------------------- what is left to run

def _launch_log(paths: layout.StudyPaths, stamp: str, states: dict[str, str]) -> None:
    log = paths.launch_dir(stamp) / layout.LAUNCH_FILENAME
    atomic_write_json(log, {"trials": {k: {"state": v} for k, v in states.items()}})


def test_interrupted_trials_read_the_logs_or_are_given(tmp_path):
    paths = layout.StudyPaths(tmp_path).create()
    plan = Plan("c1", "reward", 0)
    name = layout.trial_name("c1", "reward", 0)
    records.write_record(paths.record("c1", "reward", 0),
                         {"config_id": "c1", "arm": "reward", "seed": 0, "status": "failed", "error": "boom"})
    _launch_log(paths, "1", {name: "running"})
    assert resume.interrupted_trials(paths) == {name}
    assert resume.plan_state([plan], paths).todo == [plan]                        # from the logs
    assert resume.plan_state([plan], paths, interrupted=set()).failed_kept == [plan]  # given
    # a launch not logged yet counts as the newest
    assert resume.interrupted_trials(paths, current={name: "failed"}) == set()
    _launch_log(paths, "2", {name: "failed"})
    os.utime(paths.launch_dir("1") / layout.LAUNCH_FILENAME, (1, 1))
    assert resume.interrupted_trials(paths) == set()


# --------------------------------------------------------------------------- spec -> study folder

def test_study_dir_from_storage_expands_variables_and_reads_relative_paths_from_base(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))
    assert layout.study_dir_from_storage("$SCRATCH/runs", "s") == tmp_path / "scratch" / "runs" / "s"
    assert layout.study_dir_from_storage("${SCRATCH}/runs", "s") == tmp_path / "scratch" / "runs" / "s"
    assert layout.study_dir_from_storage("runs", "s", base=tmp_path) == tmp_path / "runs" / "s"
    monkeypatch.chdir(tmp_path)
    assert layout.study_dir_from_storage("runs", "s") == tmp_path.resolve() / "runs" / "s"
    monkeypatch.delenv("SCRATCH")
    with pytest.raises(SpecError, match=r"^a.yaml:3: storage: environment variable SCRATCH is not set"):
        layout.study_dir_from_storage("$SCRATCH/runs", "s", source="a.yaml:3: storage")
    with pytest.raises(SpecError, match=r"^a.yaml: storage: 's3://b/runs' is a URI; .* must be a path"):
        layout.study_dir_from_storage("s3://b/runs", "s", source="a.yaml: storage")
    assert layout.study_dir_from_storage("$NOT/x", "s", base=tmp_path, expand_env=False) == tmp_path / "$NOT" / "x" / "s"


def test_report_finds_a_study_whose_storage_names_an_environment_variable(tmp_path, monkeypatch, capsys):
    from rewardsweep.cli import main
    from tests.analysis_helpers import write_study

    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))
    write_study(tmp_path / "scratch" / "runs" / "mine", effects=(0.01,), seeds=3)
    spec = tmp_path / "specs" / "mine.yaml"
    spec.parent.mkdir()
    spec.write_text("name: mine\nstorage: $SCRATCH/runs\nseeds: 3\ngrid: {lr: [1, 2]}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(spec), "--no-plots"]) == 0
    assert (tmp_path / "scratch" / "runs" / "mine" / "report" / "report.md").is_file()
    monkeypatch.delenv("SCRATCH")
    assert main(["report", str(spec), "--no-plots"]) != 0
    assert "environment variable SCRATCH is not set" in capsys.readouterr().err
