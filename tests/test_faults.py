"""Faults a user meets: storage that cannot be written, corrupt records, temp folders left
by killed processes. Each ends in one clear line and loses nothing. (Kills of a running
launch and storage failing mid-study, which need Ray, are in test_launch.py.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.test_launch import SMOKE, spec_variant


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to, root included: ``chattr +i`` as root (chmod does not
    stop root), ``chmod 555`` otherwise; where neither works, a path below a file."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    yield blocker / "ro"


def _no_ray(monkeypatch):
    from rewardsweep.runners import pretrain
    from rewardsweep.sweep import tune as tune_mod

    monkeypatch.setattr(tune_mod, "init_ray", lambda *a, **k: pytest.fail("started Ray"))
    monkeypatch.setattr(pretrain, "_train", lambda *a, **k: pytest.fail("pretrained"))


def _one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_unwritable_study_folder_fails_before_anything_runs(where, tmp_path, read_only_dir, capsys, monkeypatch):
    from rewardsweep import cli

    _no_ray(monkeypatch)
    if where == "under-a-file":
        (tmp_path / "file").write_text("")
        storage = tmp_path / "file" / "runs"
    else:
        storage = read_only_dir / "runs"
    assert cli.main(["launch", str(SMOKE), "--storage", str(storage)]) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"rewardsweep: error: study folder {storage / 'smoke'}: cannot write there")
    assert "storage" in line and "expected a writable folder" in line


def test_unwritable_cache_and_wandb_folder(tmp_path, read_only_dir, capsys, monkeypatch):
    from rewardsweep import cli

    _no_ray(monkeypatch)
    monkeypatch.setenv("REWARDSWEEP_CACHE", str(read_only_dir / "cache"))
    assert cli.main(["launch", str(SMOKE), "--storage", str(tmp_path / "runs")]) == 2
    line = _one_line_error(capsys)
    assert f"checkpoint cache {read_only_dir / 'cache'}: cannot write there" in line and "REWARDSWEEP_CACHE" in line

    monkeypatch.undo()
    _no_ray(monkeypatch)
    study = tmp_path / "runs2" / "smoke"
    (study).mkdir(parents=True)
    (study / "wandb").write_text("")          # a file where the W&B folder must be
    assert cli.main(["launch", str(SMOKE), "--storage", str(tmp_path / "runs2")]) == 2
    line = _one_line_error(capsys)
    assert f"W&B folder {study / 'wandb'}: cannot write there" in line and "--wandb disabled" in line
    assert not (study / "records").exists() or not any((study / "records").iterdir())


def test_full_disk_is_found_by_the_write_check(tmp_path):
    """A nearly full disk accepts an empty file but not a record: the check really writes."""
    from rewardsweep.storage import PROBE_BYTES, StorageError, check_writable

    mount = tmp_path / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        # no mount rights (CI): a file-size limit below the probe's size fails the same way
        import resource
        import signal

        old_limit, old_handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (PROBE_BYTES // 4, old_limit[1]))
        try:
            with pytest.raises(StorageError, match=r"cannot write there: File too large \(EFBIG\)"):
                check_writable(mount, "study folder")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)
        return
    try:
        with pytest.raises(StorageError, match=r"study folder .*full: cannot write there: No space left on device \(ENOSPC\)"):
            check_writable(mount, "study folder")
        assert list(mount.iterdir()) == []     # the probe is gone
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_pretrain_command_checks_its_cache(read_only_dir, capsys, monkeypatch):
    from rewardsweep import cli

    _no_ray(monkeypatch)
    assert cli.main(["pretrain", "--cache-dir", str(read_only_dir / "ckpts")]) == 2
    line = _one_line_error(capsys)
    assert f"checkpoint cache {read_only_dir / 'ckpts'}: cannot write there" in line and "--cache-dir" in line


# --------------------------------------------------------------------------- records

def _finished(config_id="c1", seed=0, **changes) -> dict:
    return {"config_id": config_id, "arm": "reward", "seed": seed, "status": "finished", "error": None,
            "miou_start": 0.5, "miou_final": 0.52, "delta_miou": 0.02, **changes}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_records_are_as_readable_as_the_umask_allows(tmp_path, umask, mode):
    from rewardsweep.study import layout, records

    old = os.umask(umask)
    try:
        path = records.write_record(layout.record_path(tmp_path, "c1", "reward", 0), _finished())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_one_rule_for_a_valid_record_in_launch_and_report(tmp_path):
    """A finished record without miou_final, a NaN one and random bytes: the launch reruns
    them and the report leaves them out, and every warning names its file."""
    from rewardsweep.analysis.collect import collect
    from rewardsweep.study import records, resume
    from rewardsweep.study.layout import StudyPaths

    from tests.test_launch_unit import Plan

    paths = StudyPaths(tmp_path).create()
    plans = [Plan("c1", "reward", s) for s in range(4)]
    records.write_record(paths.record("c1", "reward", 0), _finished(seed=0))
    bad = {1: paths.record("c1", "reward", 1), 2: paths.record("c1", "reward", 2),
           3: paths.record("c1", "reward", 3)}
    bad[1].write_text(json_dump(_finished(seed=1, miou_final=None)))
    bad[2].write_text(json_dump(_finished(seed=2, miou_final=float("nan"))))
    bad[3].write_bytes(os.urandom(256) + b"\xff\xfe")

    state = resume.plan_state(plans, paths)
    assert [p.seed for p in state.done] == [0] and [p.seed for p in state.todo] == [1, 2, 3]
    assert len(state.problems) == 3
    for seed, problem in zip((1, 2, 3), state.problems):
        assert problem.startswith(f"{bad[seed]}: ")
    assert "miou_final is None" in state.problems[0] and "miou_final is nan" in state.problems[1]

    collection = collect([tmp_path])
    assert list(collection.trials["seed"]) == [0]
    assert len(collection.warnings) == 3
    for warning in collection.warnings:
        assert any(warning.startswith(f"{path}: ") for path in bad.values()), warning

    resume.set_aside_invalid(paths, state.unreadable)
    assert sorted(p.name for p in paths.records.glob("*.json")) == ["c1-reward-seed0.json"]
    assert len(list((paths.records / "invalid").iterdir())) == 3


def json_dump(record: dict) -> str:
    import json

    return json.dumps(record, allow_nan=True)


# --------------------------------------------------------------------------- temp folders

def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_only_temp_folders_of_dead_processes_of_this_host_are_removed(tmp_path):
    import socket

    from rewardsweep.storage import make_temp_dir, remove_stale_temp_dirs

    host = socket.gethostname()
    mine = make_temp_dir("pretrain-", tmp_path)                      # this live process
    dead = tmp_path / f"pretrain-{host}-{_dead_pid()}-abcd"
    other_host = tmp_path / f"pretrain-elsewhere-{_dead_pid()}-abcd"  # a cache shared by a cluster
    unrelated = tmp_path / f"other-{host}-{_dead_pid()}-abcd"
    for folder in (dead, other_host, unrelated):
        (folder / "sub").mkdir(parents=True)
    assert mine.name.startswith(f"pretrain-{host}-{os.getpid()}-")
    assert remove_stale_temp_dirs("pretrain-", tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, other_host, unrelated))


def _my_trial_dirs() -> set[Path]:
    import socket
    import tempfile

    return set(Path(tempfile.gettempdir()).glob(f"rewardsweep-trial-{socket.gethostname()}-{os.getpid()}-*"))


def test_a_failing_record_write_raises_and_leaves_no_temp_folder(tmp_path, tiny_start):
    from rewardsweep.runners.trial import run_trial
    from rewardsweep.storage import storage_failure

    before = _my_trial_dirs()
    config = dict(study="t", study_dir=str(tmp_path), config_id="cfg", arm="mle", seed=0, model="tiny-synthetic",
                  start=tiny_start, steps=2, eval_every=2, batch_size=2, debug={"write_error": "ENOSPC"})
    with pytest.raises(OSError) as info:
        run_trial(config)
    assert storage_failure(info.value, tmp_path) is info.value and "No space left" in str(info.value)
    assert storage_failure(info.value, tmp_path / "elsewhere") is None   # only the study's storage counts
    assert not list((tmp_path / "records").glob("*.json"))
    assert _my_trial_dirs() == before


def test_worker_wrapper_reports_storage_failure_without_raising_or_training(tmp_path, read_only_dir):
    """No retry (the wrapper returns), no training when the records folder is unwritable."""
    import errno

    from rewardsweep.sweep import tune as tune_mod

    calls = []

    def full_disk(config, on_event=None):
        calls.append(config["seed"])
        path = Path(config["study_dir"]) / "records" / "x.json"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    config = {"study": "s", "study_dir": str(tmp_path / "s"), "config_id": "c", "arm": "reward", "seed": 0}
    final = tune_mod.run_one({"config": config, "params": {}}, full_disk, None)
    assert (final["status"], calls) == ("unsaved", [0])
    assert final["storage_error"] == f"{tmp_path / 's' / 'records' / 'x.json'}: cannot write: No space left on device (ENOSPC)"

    blocked = dict(config, study_dir=str(read_only_dir / "s"), seed=1)
    final = tune_mod.run_one({"config": blocked, "params": {}}, full_disk, None)
    assert final["status"] == "unsaved" and calls == [0]                 # never trained
    assert final["storage_error"].startswith(f"records folder {read_only_dir / 's' / 'records'}: cannot write there")

    def data_error(config, on_event=None):  # an OS error outside the study folder is a trial failure
        raise OSError(errno.EACCES, "Permission denied", "/data/cityscapes/x.png")

    with pytest.raises(OSError):
        tune_mod.run_one({"config": dict(config, seed=2), "params": {}}, data_error, None)
