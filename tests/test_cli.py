"""The ``rewardsweep`` command in a shell: version, ``python -m``, unknown flags, any
terminal encoding, a closed pipe, and next-step hints in the form it was invoked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsweep import __version__, cli
from rewardsweep.shell import invoked_as
from tests.analysis_helpers import write_study

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewardsweep", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_version_through_python_m():
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"rewardsweep {__version__}"


@pytest.mark.parametrize("argv", [["--foo"], ["launch", "--foo"], ["launch", str(SMOKE), "--dry", "--bogus=1"]])
def test_unknown_flags_are_named_as_such(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"unrecognized arguments: {argv[-1].split('=')[0]}")


def test_abbreviated_and_negative_values_still_parse(tmp_path, capsys):
    assert cli.main(["launch", str(SMOKE), "--dry", "--storage", str(tmp_path)]) == 0   # --dry-run
    write_study(tmp_path / "toy", seeds=3)
    assert cli.main(["report", "--effect", "-0.5", "--no-plots", str(tmp_path / "toy")]) == 2  # parsed, then checked
    assert "--effect -0.5: must be a positive" in capsys.readouterr().err


def test_report_prints_on_an_ascii_terminal(tmp_path):
    write_study(tmp_path / "toy", seeds=4)
    proc = _run("report", str(tmp_path / "toy"), "--no-plots", env=dict(os.environ, PYTHONIOENCODING="ascii"))
    assert proc.returncode == 0, proc.stderr
    assert "d mIoU" in proc.stdout and "+-" in proc.stdout          # Delta and +- as ASCII look-alikes
    proc.stdout.encode("ascii")


@pytest.mark.parametrize("argv", [["launch", str(SMOKE), "--dry-run"], ["report", "STUDY", "--no-plots"], ["--help"]])
def test_closed_stdout_is_quiet(argv, tmp_path):
    if "STUDY" in argv:
        write_study(tmp_path / "toy", seeds=3)
        argv = [str(tmp_path / "toy") if a == "STUDY" else a for a in argv]
    read_end, write_end = os.pipe()
    os.close(read_end)                                                # `| head -0`: the reader is gone
    try:
        proc = subprocess.run([sys.executable, "-m", "rewardsweep", *argv], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1)


def test_hints_use_the_command_as_invoked(tmp_path, monkeypatch):
    tool = tmp_path / "bin" / "rewardsweep"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert invoked_as(str(tool)) == os.path.join("bin", "rewardsweep")   # not on PATH: the path typed
    monkeypatch.setenv("PATH", f"{tool.parent}:/usr/bin:/bin")
    assert invoked_as(str(tool)) == "rewardsweep"                       # on PATH: its name
    assert invoked_as(str(ROOT / "rewardsweep" / "__main__.py")).endswith(" -m rewardsweep")


def test_report_summary_run_prints_its_sync_command(tmp_path, monkeypatch, capsys):
    """A real offline W&B summary run: the hint names exactly that run's folder."""
    write_study(tmp_path / "toy", seeds=3)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert cli.main(["report", str(tmp_path / "toy"), "--no-plots", "--wandb-summary"]) == 0
    hint = [ln for ln in capsys.readouterr().out.splitlines() if "wandb sync" in ln]
    assert len(hint) == 1
    run_dir = Path(hint[0].split("wandb sync ", 1)[1])
    assert run_dir.is_dir() and run_dir.name.startswith("offline-run-") and any(run_dir.glob("run-*.wandb"))
