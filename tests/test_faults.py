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
    from rewardsweep.sweep import ray_cluster

    monkeypatch.setattr(ray_cluster, "init_ray", lambda *a, **k: pytest.fail("started Ray"))
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

    from rewardsweep.sweep import worker

    calls = []

    def full_disk(config, on_event=None):
        calls.append(config["seed"])
        path = Path(config["study_dir"]) / "records" / "x.json"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    config = {"study": "s", "study_dir": str(tmp_path / "s"), "config_id": "c", "arm": "reward", "seed": 0}
    final = worker.run_one({"config": config, "params": {}}, full_disk, None)
    assert (final["status"], calls) == ("unsaved", [0])
    assert final["storage_error"] == f"{tmp_path / 's' / 'records' / 'x.json'}: cannot write: No space left on device (ENOSPC)"

    blocked = dict(config, study_dir=str(read_only_dir / "s"), seed=1)
    final = worker.run_one({"config": blocked, "params": {}}, full_disk, None)
    assert final["status"] == "unsaved" and calls == [0]                 # never trained
    assert final["storage_error"].startswith(f"records folder {read_only_dir / 's' / 'records'}: cannot write there")

    def data_error(config, on_event=None):  # an OS error outside the study folder is a trial failure
        raise OSError(errno.EACCES, "Permission denied", "/data/cityscapes/x.png")

    with pytest.raises(OSError):
        worker.run_one({"config": dict(config, seed=2), "params": {}}, data_error, None)


# =========================================================================== round two (issue #20)
#
# The fault matrix: every fault the second fault campaign found, the one line the user
# sees, the exit status and what is kept. Spec faults run the real CLI (no Ray); the
# faults of a running launch use a real local Ray and real trials (marked slow).

import json
import resource
import signal
import sys
import textwrap
import time

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "bad_specs"


def _spec(folder: Path, body: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


_PLAIN = "name: {name}\nmodel: tiny-synthetic\nseeds: 2\nsteps: 10\neval_every: 5\n"


def _cli_line(capsys, argv: list[str]) -> tuple[int, str, float]:
    """(exit status, the one stderr line, seconds) of the real CLI, in this process."""
    from rewardsweep import cli

    began = time.perf_counter()
    code = cli.main(argv)
    took = time.perf_counter() - began
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return code, lines[0], took


# ---- spec faults: refused in one line, exit 2, within a second, before Ray or pretraining

SPEC_FAULTS = {
    # fault: (corpus file or a maker(tmp_path) -> spec path, parts of the line)
    "a !!python/object tag": ("python_object_tag.yaml", ["YAML tag !!python/object/apply:os.system is not allowed"]),
    "a 368-byte YAML alias bomb": ("alias_bomb.yaml", ["expands to more than 100,000 values"]),
    "seeds: 1000000000": ("seeds_too_many.yaml", ["max_trials", "up to 2,000,000,000 trials"]),
    "sample.num_samples: 1e9": ("sample_too_many.yaml", ["1,000,000,000 samples", "above max_trials"]),
    "a grid of 10^6 points": ("grid_too_large.yaml", ["1,000,000 grid points", "above max_trials 100,000"]),
    "a seed >= 2^32": ("seed_too_large.yaml", ["seeds[1]", "below 2^32"]),
    "class_weights.counts of the wrong length": ("class_weights_wrong_length.yaml",
                                                 ["expected 6 counts (one per class), got 3"]),
    "a broken model: config file": ("model_config_broken.yaml", ["not a readable MMSeg config"]),
    "a garbage checkpoint: file": ("checkpoint_garbage.yaml", ["is not a PyTorch checkpoint"]),
    "a truncated checkpoint: file": ("checkpoint_truncated.yaml", ["is a damaged PyTorch checkpoint"]),
    "a bit-flipped checkpoint: file": ("checkpoint_bit_flip.yaml", ["fails its CRC-32 check"]),
    "name: 1e3": ("name_number.yaml", ["1000.0 is a number in YAML", "quote it"]),
    "a 300-character name": ("name_too_long.yaml", ["300 characters is too long"]),
    "a secret in $VAR": ("secret_env_var.yaml", ["WANDB_API_KEY looks like a secret"]),
}


def _big_spec(tmp_path: Path) -> Path:
    """A 50 MB spec: read up to the cap, refused, never echoed."""
    path = tmp_path / "big.yaml"
    with open(path, "w") as handle:
        handle.write(_PLAIN.format(name="big") + "description: |\n")
        line = "  " + "x" * 1000 + "\n"
        for _ in range(50_000):
            handle.write(line)
    return path


def _symlink_loop(tmp_path: Path) -> Path:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return _spec(tmp_path, _PLAIN.format(name="loop") + f"storage: {tmp_path / 'a' / 'runs'}\n")


def _endless(tmp_path: Path) -> Path:
    return Path("/dev/zero")


GENERATED = {
    "a 50 MB spec": (_big_spec, ["larger than 256 KiB"]),
    "a spec that never ends (/dev/zero)": (_endless, ["larger than 256 KiB"]),
    "a storage: symlink loop": (_symlink_loop, ["storage", "a symlink loop"]),
}


# faults that once took unbounded time or memory: refused within a second now
BOUNDED_WORK = {"a 368-byte YAML alias bomb", "seeds: 1000000000", "sample.num_samples: 1e9",
                "a grid of 10^6 points", "a 50 MB spec", "a spec that never ends (/dev/zero)"}


@pytest.mark.parametrize("fault", [*SPEC_FAULTS, *GENERATED])
def test_spec_fault_matrix(fault, tmp_path, capsys, monkeypatch):
    """Launch and --dry-run alike: one line naming file (and line) and key, exit 2, nothing
    started, no secret's value in the line; what once took unbounded work, within a second."""
    _no_ray(monkeypatch)
    monkeypatch.setenv("WANDB_API_KEY", "local-0123456789abcdef-not-a-real-key")
    if fault in SPEC_FAULTS:
        name, parts = SPEC_FAULTS[fault]
        spec = BAD / name
    else:
        maker, parts = GENERATED[fault]
        spec = maker(tmp_path)
    monkeypatch.chdir(tmp_path)   # the spec's storage (runs) would be here
    for extra in (["--dry-run"], []):
        code, line, took = _cli_line(capsys, ["launch", str(spec), *extra])
        assert code == 2 and line.startswith(f"rewardsweep: error: {spec}"), line
        assert all(part in line for part in parts), line
        assert "0123456789abcdef" not in line and len(line) < 600
        limit = 1.0 if fault in BOUNDED_WORK else 5.0   # the others may read a config or a checkpoint
        assert took < limit, f"{fault}: refused after {took:.2f} s"
    assert not (tmp_path / "runs").exists()


def test_a_spec_under_the_limits_dry_runs_in_bounded_memory(tmp_path):
    """The worst spec within the default limits: 10,000 distinct configurations, each
    validated by the trial schema, hashed and tabled (the most work a dry run can be
    asked for without raising max_trials). In a fresh process it stays under 200 MB
    (measured 151 MB, 12 s at load average 7 on 2 cores: most of it the table)."""
    spec = _spec(tmp_path, """\
        name: worst
        model: tiny-synthetic
        seeds: 1
        steps: 10
        eval_every: 5
        control: none
        grid:
          lr.start: [0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
          lr.power: [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4]
          optimizer.weight_decay: [0.0, 1.0e-5, 2.0e-5, 3.0e-5, 4.0e-5, 5.0e-5, 6.0e-5, 7.0e-5, 8.0e-5, 9.0e-5]
          samples: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        """)
    code = textwrap.dedent(f"""
        import contextlib, io, json, resource, sys, time
        from rewardsweep.cli import main
        began = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as out:
            rc = main(["launch", {str(spec)!r}, "--dry-run", "--storage", {str(tmp_path / "runs")!r}])
        # this process's peak (VmHWM; ru_maxrss would count the forked test process before exec)
        peak = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
        print(json.dumps({{"rc": rc, "s": time.perf_counter() - began, "table": out.getvalue()[-400:],
                          "rss_mb": peak / 1024}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0 and "10000 trials: 10000 configurations x 1 seed" in result["table"], result
    assert result["rss_mb"] < 200, result


def test_name_is_kept_as_written_when_quoted(tmp_path):
    from rewardsweep.sweep.spec import load_spec

    spec = load_spec(_spec(tmp_path, _PLAIN.format(name='"1e3"'), "q.yaml"))
    assert spec.name == "1e3" and spec.study_dir.endswith("/1e3")


def test_env_vars_in_paths_are_what_a_path_needs(tmp_path, monkeypatch):
    from rewardsweep.errors import SpecError
    from rewardsweep.sweep.spec import load_spec

    monkeypatch.setenv("MY_DATA", str(tmp_path / "data"))
    ok = _spec(tmp_path, _PLAIN.format(name="env") + "data_root: $MY_DATA/x\nstorage: ${MY_DATA}/runs\n")
    spec = load_spec(ok)
    assert spec.data_root == str(tmp_path / "data" / "x") and spec.storage == str(tmp_path / "data" / "runs")
    for var in ("WANDB_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD", "GITHUB_TOKEN"):
        monkeypatch.setenv(var, "s3cr3t-value")
        bad = _spec(tmp_path, _PLAIN.format(name="env") + f"data_root: /data/${var}\n", f"{var}.yaml")
        with pytest.raises(SpecError) as info:
            load_spec(bad)
        assert f"{var} looks like a secret" in str(info.value) and "s3cr3t" not in str(info.value)
    monkeypatch.setenv("MULTI", "/a\n/b")
    with pytest.raises(SpecError, match="control character"):
        load_spec(_spec(tmp_path, _PLAIN.format(name="env") + "storage: $MULTI\n", "m.yaml"))


# ---- records that lie: one rule, at launch and report alike

def _valid(study: str, config_id: str = "c1", arm: str = "reward", seed: int = 0, **changes) -> dict:
    from rewardsweep.study.synthetic import synthetic_record

    rec = synthetic_record(study=study, config_id=config_id, arm=arm, seed=seed, control_id="ctl",
                           params={}, miou_start=0.5, miou_final=0.52)
    rec.update(changes)
    return rec


def _lie(changes: dict) -> dict:
    """A valid record of study 'mine', reward seed 0, with ``changes`` (its study among them)."""
    return {**_valid("mine"), **changes}


RECORD_FAULTS = {
    # fault: (file name (trial), record changes, the phrase of the warning)
    "a file named seed0 holding seed 1": ("c1-reward-seed0", {"seed": 1},
                                          "holds trial c1-reward-seed1 but the file is named c1-reward-seed0"),
    "a record copied in from another study": ("c1-reward-seed1", {"seed": 1, "study": "elsewhere"},
                                              "belongs to study 'elsewhere', not to this study 'mine'"),
    "a second control copied in": ("c9-mle-seed0", {"config_id": "c9", "arm": "mle", "study": "elsewhere"},
                                   "belongs to study 'elsewhere'"),
    "miou_final above 1": ("c1-reward-seed2", {"seed": 2, "miou_final": 7.5}, "miou_final is 7.5, outside [0, 1]"),
    "a negative miou_start": ("c1-reward-seed3", {"seed": 3, "miou_start": -0.2}, "miou_start is -0.2, outside [0, 1]"),
    "a seed beyond 2^32": ("c1-reward-seed4294967296", {"seed": 2 ** 32}, "seed is 4294967296"),
    "val_counts_file outside the study": ("c1-reward-seed5", {"seed": 5, "val_counts_file": "../../etc/passwd"},
                                          "val_counts_file is '../../etc/passwd', outside the study folder"),
    "diagnostics_file absolute": ("c1-reward-seed6", {"seed": 6, "diagnostics_file": "/etc/shadow"},
                                  "diagnostics_file is '/etc/shadow', outside the study folder"),
    "a config_id that is a path": ("c1-reward-seed7", {"seed": 7, "config_id": "../x"}, "config_id is '../x'"),
}


def _study_with_lies(tmp_path: Path):
    """A launched study 'mine' (plan.json) with one valid record per seed 0..7 and every lie."""
    from rewardsweep.study import layout, records
    from rewardsweep.study.layout import StudyPaths
    from rewardsweep.sweep.bookkeeping import write_plan
    from tests.test_launch_unit import Plan

    paths = StudyPaths(tmp_path / "mine").create()
    plans = [Plan("c1", "reward", s) for s in range(8)] + [Plan("ctl", "mle", s) for s in range(8)]
    write_plan(paths, "mine", plans)
    for seed in range(8):
        records.write_record(paths.record("ctl", "mle", seed), _valid("mine", "ctl", "mle", seed, control_id="ctl"))
    lies = {}
    for fault, (stem, changes, phrase) in RECORD_FAULTS.items():
        path = paths.records / f"{stem}.json"
        path.write_text(json.dumps(_lie(changes)))
        lies[fault] = (path, phrase)
    # a record whose sidecar is a symbolic link out of the study folder
    (paths.root / "val_counts").mkdir()
    (paths.root / "val_counts" / "c1-reward-seed8.json").symlink_to("/etc/passwd")
    sneaky = paths.records / "c1-reward-seed8.json"
    sneaky.write_text(json.dumps(_valid("mine", seed=8, val_counts_file="val_counts/c1-reward-seed8.json")))
    return paths, plans, lies, sneaky


def test_records_that_lie_are_set_aside_at_launch_and_skipped_by_the_report(tmp_path):
    from rewardsweep.analysis.collect import collect
    from rewardsweep.study import resume

    paths, plans, lies, sneaky = _study_with_lies(tmp_path)
    state = resume.plan_state(plans, paths, study="mine")
    for fault, (path, phrase) in lies.items():
        assert any(p.startswith(f"{path}: ") and phrase in p for p in state.problems), (fault, state.problems)
        assert path in state.unreadable
    # every reward seed the spec names reruns: none of the lies counts as done
    assert sorted(p.seed for p in state.todo) == list(range(8)) and state.orphans == 0

    coll = collect([paths.root])
    assert set(coll.trials["config_id"]) == {"ctl"}                    # no lie reached the table
    for fault, (path, phrase) in lies.items():
        assert any(w.startswith(f"{path}: ") and phrase in w for w in coll.warnings), (fault, coll.warnings)
    assert any(w.startswith(str(sneaky)) and "leads outside the study folder" in w for w in coll.warnings)
    assert sneaky in state.unreadable                                   # the same rule at launch

    resume.set_aside_invalid(paths, state.unreadable)
    assert len(list(paths.invalid_records.iterdir())) == len(lies) + 1


def test_report_leaves_out_configurations_the_spec_no_longer_names(tmp_path, capsys):
    """After a grid edit: the records of a configuration the spec (as last launched) no
    longer names are not in the table or the Holm family, and the report says so;
    --all-configs puts them back."""
    from rewardsweep import cli
    from rewardsweep.sweep.bookkeeping import write_plan
    from rewardsweep.study.layout import StudyPaths
    from tests.analysis_helpers import write_study
    from tests.test_launch_unit import Plan

    folder = tmp_path / "edited"
    truth = write_study(folder, effects=(0.01, 0.0, -0.01), seeds=4)
    dropped = truth["config_ids"][2]
    kept = [truth["control_id"], *truth["config_ids"][:2]]
    write_plan(StudyPaths(folder), "edited", [Plan(c, "reward", s) for c in kept for s in range(4)])

    assert cli.main(["report", str(folder), "--no-plots"]) == 0
    out = capsys.readouterr()
    assert f"left out: configuration(s) {dropped} (4 records)" in out.out + out.err
    table = (folder / "report" / "summary.csv").read_text()
    assert dropped not in table and all(c in table for c in truth["config_ids"][:2])

    assert cli.main(["report", str(folder), "--no-plots", "--all-configs"]) == 0
    assert dropped in (folder / "report" / "summary.csv").read_text()


# ---- the report's own writes

def test_report_on_a_full_disk_fails_in_one_line(tmp_path):
    """The records read fine, the report's files do not fit: one line, exit 2 (a real
    16 KB tmpfs where this machine allows mounts, else a file-size limit)."""
    from tests.analysis_helpers import write_study

    folder = tmp_path / "full"
    write_study(folder, effects=(0.01, 0.0), seeds=4)
    report = folder / "report"
    report.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(report)],
                             capture_output=True).returncode == 0

    def limit():  # the child only: report files above 80 KB fail with EFBIG, as on a full disk
        if not mounted:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (80 * 1024, resource.RLIM_INFINITY))

    try:
        proc = subprocess.run([sys.executable, "-m", "rewardsweep.cli", "report", str(folder)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300, preexec_fn=limit)
    finally:
        if mounted:
            subprocess.run(["umount", str(report)], check=True)
    err = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("rewardsweep: warning")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(err) == 1 and err[0].startswith(f"rewardsweep: error: report folder {report}: cannot write"), err
    assert "No space left on device (ENOSPC)" in err[0] or "File too large (EFBIG)" in err[0]
    assert "Traceback" not in proc.stderr
    assert len(list((folder / "records").glob("*.json"))) == 12          # the records are untouched


# ---- the pretraining cache: shared, moved, damaged

def test_cache_keys_do_not_depend_on_where_the_cache_is(tmp_path, monkeypatch):
    import shutil

    from rewardsweep.runners.pretrain import ensure_start

    first = tmp_path / "first"
    monkeypatch.setenv("REWARDSWEEP_CACHE", str(first))
    made = ensure_start("tiny-synthetic", "auto", iters=4)
    moved = tmp_path / "moved"
    shutil.move(str(first), str(moved))
    monkeypatch.setenv("REWARDSWEEP_CACHE", str(moved))
    again = ensure_start("tiny-synthetic", "auto", iters=4)
    assert again["cached"] is True and again["checkpoint_hash"] == made["checkpoint_hash"]
    assert again["checkpoint"].startswith(str(moved))


def test_a_damaged_cache_entry_is_pretrained_again_to_the_same_bytes(tmp_path, capsys):
    from rewardsweep.runners.pretrain import ensure_start

    made = ensure_start("tiny-synthetic", "auto", iters=4, cache_dir=tmp_path)
    ckpt = Path(made["checkpoint"])
    for damage in ("flip", "truncate"):
        data = bytearray(ckpt.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0x10                # same size, one bit
        else:
            data = data[: len(data) // 3]
        ckpt.write_bytes(bytes(data))
        again = ensure_start("tiny-synthetic", "auto", iters=4, cache_dir=tmp_path)
        assert again["cached"] is False and again["checkpoint_hash"] == made["checkpoint_hash"]
        assert f"cached start checkpoint {ckpt.parent}: its start.pth" in capsys.readouterr().out
    assert ensure_start("tiny-synthetic", "auto", iters=4, cache_dir=tmp_path)["cached"] is True


def test_two_processes_share_one_pretraining(tmp_path):
    """Two pretrainings of the same preset into one cache at once: one trains, the other
    waits on the lock and reuses its entry."""
    code = textwrap.dedent(f"""
        import json
        from rewardsweep.runners.pretrain import ensure_start
        start = ensure_start("tiny-synthetic", "auto", iters=12, cache_dir={str(tmp_path / 'ckpts')!r})
        print(json.dumps({{"cached": start["cached"], "hash": start["checkpoint_hash"]}}))
    """)
    env = dict(os.environ, REWARDSWEEP_CACHE=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    results = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    assert sorted(r["cached"] for r in results) == [False, True], outs
    assert results[0]["hash"] == results[1]["hash"]
    assert sum("waiting for another process pretraining the tiny-synthetic start checkpoint" in o
               for o in outs) == 1, outs


def test_every_record_and_cache_entry_is_synced_before_its_rename(tmp_path, monkeypatch):
    from rewardsweep.study import atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic.atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert events[:2] == ["fsync", "replace"] and events[-1] == "fsync"   # the file, the rename, the folder


# ---- the start checkpoint in a trial, and code that is not the driver's

def test_a_trial_never_trains_from_a_start_that_is_not_the_one_named(tmp_path, tiny_start):
    import shutil

    from rewardsweep.errors import StartCheckpointError
    from rewardsweep.runners.trial import run_trial

    ckpt = tmp_path / "start.pth"
    shutil.copy(tiny_start["checkpoint"], ckpt)
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x01
    ckpt.write_bytes(bytes(data))
    config = dict(study="t", study_dir=str(tmp_path), config_id="cfg", arm="reward", seed=0, model="tiny-synthetic",
                  start={**tiny_start, "checkpoint": str(ckpt)}, steps=2, eval_every=2, batch_size=2)
    with pytest.raises(StartCheckpointError, match=r"its hash is \w+, not " + tiny_start["checkpoint_hash"]):
        run_trial(config)
    assert not list((tmp_path / "records").glob("*.json"))         # no diverged or failed record
    ckpt.unlink()
    with pytest.raises(StartCheckpointError, match="cannot be read"):
        run_trial(config)


def test_the_worker_stops_a_trial_with_a_bad_start_or_other_code_without_retry(tmp_path):
    from rewardsweep.code_identity import code_identity
    from rewardsweep.errors import ConfigError, StartCheckpointError
    from rewardsweep.sweep import worker

    config = {"study": "s", "study_dir": str(tmp_path / "s"), "config_id": "c", "arm": "reward", "seed": 0}
    calls = []

    def bad_start(config, on_event=None):
        calls.append(config["seed"])
        raise StartCheckpointError("start checkpoint /x/start.pth: its hash is 1, not 2")

    final = worker.run_one({"config": config, "params": {}}, bad_start, None)
    assert final["status"] == "not_run" and final["stop_error"].startswith("start checkpoint /x/start.pth")

    other = {"version": "0.0.1", "code": "0" * 16}
    final = worker.run_one({"config": config, "params": {}, "driver": other}, bad_start, None)
    assert final["status"] == "not_run" and calls == [0]                  # never ran
    assert f"rewardsweep {code_identity()['version']}" in final["stop_error"]
    assert "but the driver runs rewardsweep 0.0.1" in final["stop_error"]
    edited = {**code_identity(), "code": "f" * 16}
    final = worker.run_one({"config": config, "params": {}, "driver": edited}, bad_start, None)
    assert "differs from the driver's (code ffffffffffffffff)" in final["stop_error"] and calls == [0]

    def config_error(config, on_event=None):   # deterministic: recorded once, never retried
        raise ConfigError("trial c: class_weights.counts: expected 6 counts")

    final = worker.run_one({"config": config, "params": {}, "driver": code_identity()}, config_error, None)
    assert final["status"] == "failed" and "expected 6 counts" in final["error"]


# ---- a running launch: corrupt start, other code, SIGTERM (real Ray, real trials)

def _damage_start_then_train(config, on_event=None):
    """A trial that finds its start file damaged under it (as a bit flip on a shared disk
    would), then trains as usual: the real ``run_trial`` must refuse to."""
    from rewardsweep.runners.trial import run_trial

    path = Path(config["start"]["checkpoint"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))
    return run_trial(config, on_event=on_event)


@pytest.mark.slow
def test_corrupt_start_launch_restore_relaunch_loses_nothing(tmp_path, monkeypatch):
    """The issue's sequence. (1) the cached start.pth gets a same-size bit flip; a launch
    finds it once, before any trial, pretrains it again to the same bytes and runs every
    trial from it. (2) the file is damaged while trials run: no trial trains from it, none
    is recorded diverged or failed, the launch stops in one line (exit 1). (3) relaunch:
    the driver rebuilds the file, the trials left run, nothing finished is rerun."""
    from rewardsweep.sweep.launch import launch
    from tests.test_launch import keys_of, read_all, spec_variant

    monkeypatch.setenv("REWARDSWEEP_CACHE", str(tmp_path / "cache"))
    spec = spec_variant(tmp_path, "poison", seeds=1, wandb={"mode": "disabled"})
    study = tmp_path / "runs" / "poison"
    planned = keys_of(spec)
    from rewardsweep.runners.pretrain import ensure_start

    good = ensure_start("tiny-synthetic", "auto", iters=30)
    ckpt = Path(good["checkpoint"])
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x01                                     # (1) corrupt the cache
    ckpt.write_bytes(bytes(data))

    first = launch(spec, num_cpus=2)
    recs = read_all(study)
    assert set(recs) == planned and all(r["status"] == "finished" for r in recs.values())
    assert {r["start"]["checkpoint_hash"] for r in recs.values()} == {good["checkpoint_hash"]}
    assert first.starts_computed == 1

    (study / "records" / next(iter(sorted(planned)))).with_suffix(".json").unlink()   # one trial to run again
    second = launch(spec, num_cpus=2, trial_fn=_damage_start_then_train)   # (2) damaged mid-launch
    assert second.stop_error and "its hash is" in second.stop_error and not second.interrupted
    assert "launch stopped: start checkpoint" in " ".join(second.summary["notes"])
    recs2 = read_all(study)
    assert set(recs2) == planned - {sorted(planned)[0]}             # no diverged, no failed record
    assert all(r["status"] == "finished" for r in recs2.values())

    kept = {p.name: p.stat().st_mtime_ns for p in (study / "records").glob("*.json")}
    third = launch(spec, num_cpus=2)                                   # (3) restore and relaunch
    recs3 = read_all(study)
    assert set(recs3) == planned and all(r["status"] == "finished" for r in recs3.values())
    assert {r["start"]["checkpoint_hash"] for r in recs3.values()} == {good["checkpoint_hash"]}
    assert {p.name: p.stat().st_mtime_ns for p in (study / "records").glob("*.json") if p.name in kept} == kept
    assert third.to_run == [sorted(planned)[0]] and not third.stop_error


@pytest.mark.slow
def test_a_node_with_other_code_fails_the_launch_in_one_line(tmp_path, monkeypatch):
    """The driver sends its code identity; a worker that runs other code (here: the driver
    pretends to be another checkout) trains nothing and the launch stops in one line."""
    from rewardsweep import code_identity as identity
    from rewardsweep.sweep.launch import launch
    from tests.test_launch import read_all, spec_variant

    real = identity.code_identity()
    monkeypatch.setattr(identity, "code_identity", lambda: {**real, "code": "0123456789abcdef"})
    spec = spec_variant(tmp_path, "othercode", seeds=1, wandb={"mode": "disabled"})
    result = launch(spec, num_cpus=2)
    assert result.stop_error and "differs from the driver's (code 0123456789abcdef)" in result.stop_error
    assert "install the driver's rewardsweep on every node" in result.stop_error
    assert not read_all(tmp_path / "runs" / "othercode")               # nothing recorded


def _sigterm_when(proc: subprocess.Popen, ready, what: str, timeout: float = 300) -> str:
    """Send SIGTERM to the launch once ``ready(lines so far)``; return all its output."""
    import selectors

    lines: list[str] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if ready(lines):
                proc.send_signal(signal.SIGTERM)
                rest = proc.communicate(timeout=180)[0]
                return "".join(lines) + rest
    proc.kill()
    pytest.fail(f"never reached {what}:\n{''.join(lines)}")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["pretraining", "trials"])
def test_sigterm_stops_a_launch_like_ctrl_c(when, tmp_path):
    """A real SIGTERM to a real launch (after ray.init installed Ray's own handler): one
    line, exit 143, finished records kept, no stack dump; a relaunch resumes."""
    from tests.test_launch import read_all, spec_variant

    changes = {"pretrain": {"iters": 3000}} if when == "pretraining" else {"seeds": 3}
    spec = spec_variant(tmp_path, "term", wandb={"mode": "disabled"}, **changes)
    study = tmp_path / "runs" / "term"
    env = dict(os.environ, PYTHONUNBUFFERED="1", REWARDSWEEP_CACHE=str(tmp_path / "cache"), COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "rewardsweep.cli", "launch", str(spec)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if when == "pretraining":
        ready = lambda lines: any("ms/iter" in ln for ln in lines)       # noqa: E731 (pretraining runs)
    else:
        ready = lambda lines: sum("] done " in ln for ln in lines) >= 2   # noqa: E731
    out = _sigterm_when(proc, ready, when)
    assert proc.returncode == 143, out
    assert "Traceback" not in out and "core dumped" not in out and "*** SIG" not in out, out
    if when == "pretraining":
        assert out.strip().splitlines()[-1] == ("rewardsweep: stopped by SIGTERM; finished trials are kept, "
                                                "re-run the same command to resume"), out
        assert not list((tmp_path / "cache" / "checkpoints").glob("*/start.pth"))
    else:
        done = {k for k, r in read_all(study).items() if r["status"] == "finished"}
        assert 2 <= len(done), out
        assert not any(r["status"] != "finished" for r in read_all(study).values()), out
        assert "interrupted" in out and "resume" in out


def test_retry_diverged_reruns_what_a_bad_start_made_diverged_before(tmp_path):
    """Records a damaged start file made `diverged` under 0.3.0 carry the good hash, so
    nothing can tell them from a real divergence: `--retry-diverged` reruns them."""
    from rewardsweep.study import records, resume
    from rewardsweep.study.layout import StudyPaths
    from tests.test_launch_unit import Plan

    paths = StudyPaths(tmp_path / "old").create()
    plans = [Plan("c1", "reward", s) for s in range(3)]
    for plan in plans:
        records.write_record(paths.record("c1", "reward", plan.seed),
                             _valid("old", seed=plan.seed, status="diverged", miou_final=None,
                                    error="loss became nan at step 1"))
    assert resume.plan_state(plans, paths).todo == []
    state = resume.plan_state(plans, paths, retry_diverged=True)
    assert state.todo == plans and state.retried_failed == plans
