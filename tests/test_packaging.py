"""A pip install alone can start: the wheel carries the shipped studies (one copy,
search_spaces/ mapped into the package), py.typed, the Apache-2.0 LICENSE and the project's
URLs; ``rewardsweep init`` writes a study that loads as the repository's does.
(The whole path, a fresh venv from the wheel running init, launch and report in an empty
folder, is measured in the issue's note: it installs torch, minutes.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from rewardsweep.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_list_names_every_subpackage():
    from setuptools import find_packages

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert set(listed) == set(find_packages(str(ROOT), include=["rewardsweep*"])) | {"rewardsweep.search_spaces"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           str(ROOT), "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("rewardsweep-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_carries_the_studies_license_types_and_urls(wheel):
    names = set(wheel.namelist())
    shipped = {p.name for p in (ROOT / "search_spaces").glob("*.yaml")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("rewardsweep/search_spaces/")} == shipped
    assert wheel.read("rewardsweep/search_spaces/smoke.yaml") == (ROOT / "search_spaces" / "smoke.yaml").read_bytes()
    assert "rewardsweep/py.typed" in names
    (license_,) = [n for n in names if n.endswith("/LICENSE")]
    text = wheel.read(license_).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    meta = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode().splitlines()
    urls = dict(line.split(": ", 1)[1].split(", ", 1) for line in meta if line.startswith("Project-URL: "))
    from rewardsweep.links import FALLBACK

    assert {k: urls[k] for k in FALLBACK} == FALLBACK          # the links the CLI and report print
    assert not any(n.startswith(("tests/", "search_spaces/", "docs/")) for n in names)


def test_init_writes_a_shipped_study_that_loads_like_the_repositorys(tmp_path, monkeypatch, capsys):
    from rewardsweep.sweep.spec import load_study

    monkeypatch.chdir(tmp_path)
    assert main(["init", "smoke"]) == 0
    assert (tmp_path / "smoke.yaml").read_bytes() == (ROOT / "search_spaces" / "smoke.yaml").read_bytes()
    out = capsys.readouterr().out
    assert "next: rewardsweep launch smoke.yaml" in out and "https://" in out
    mine = load_study(tmp_path / "smoke.yaml").expansion.trials
    assert [p.trial_name for p in mine] == [p.trial_name for p in load_study(ROOT / "search_spaces" / "smoke.yaml")
                                            .expansion.trials]
    assert main(["init", "smoke"]) == 2                                 # never overwrites without --force
    assert "exists; remove it or pass --force" in capsys.readouterr().err
    assert main(["init", "smoke", "--force"]) == 0 and main(["init"]) == 0
    assert (tmp_path / "baseline.yaml").is_file()                      # the default: the main job
    assert main(["init", "basline"]) == 2
    assert "did you mean 'baseline'?" in capsys.readouterr().err
    assert main(["init", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(list((ROOT / "search_spaces").glob("*.yaml"))) and any(
        line.startswith("smoke ") for line in listed)
