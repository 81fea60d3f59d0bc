"""Bad search spaces: each gives exactly one line naming the key (and the line), exit 2.

Every file under tests/bad_specs/ starts with ``# expect: a | b | ...``: each part must
appear in the message; ``line=N`` (or ``line=N:C`` for YAML syntax errors) means the
message starts with ``<file>:N:`` (``<file>:N:C:``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rewardsweep.errors import SpecError
from rewardsweep.sweep.spec import load_spec
from rewardsweep.sweep.table import dry_run

ROOT = Path(__file__).resolve().parents[1]
BAD = sorted((ROOT / "tests" / "bad_specs").glob("*.yaml"))


def _expectations(path: Path) -> tuple[str | None, list[str]]:
    first = path.read_text().splitlines()[0]
    m = re.match(r"#\s*expect:\s*(.*)$", first)
    assert m, f"{path.name}: first line must be '# expect: ...'"
    line, parts = None, []
    for part in (p.strip() for p in m.group(1).split("|")):
        if part.startswith("line="):
            line = part[len("line="):]
        elif part:
            parts.append(part)
    return line, parts


def _check(path: Path, source: str, message: str) -> None:
    line, parts = _expectations(path)
    assert "\n" not in message and "\r" not in message, f"more than one line: {message!r}"
    assert message.startswith(source), message
    if line is not None:
        assert message.startswith(f"{source}:{line}:"), f"expected line {line}: {message}"
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert "Traceback" not in message


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_spec_one_line(path: Path, monkeypatch):
    monkeypatch.chdir(ROOT)
    source = str(path.relative_to(ROOT))  # messages name the file as the user gave it
    with pytest.raises(SpecError) as info:
        load_spec(source)
    _check(path, source, str(info.value))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_spec_dry_run_raises_same_error(path: Path):
    with pytest.raises(SpecError) as info:
        dry_run(str(path))
    _check(path, str(path), str(info.value))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_spec_cli_dry_run(path: Path, capsys):
    from rewardsweep.cli import main

    rc = main(["launch", str(path), "--dry-run"])
    captured = capsys.readouterr()
    assert rc == 2
    err = captured.err.rstrip("\n")
    assert err.startswith("rewardsweep: error: ")
    _check(path, str(path), err[len("rewardsweep: error: "):])


def test_bad_specs_never_start_ray():
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from rewardsweep.cli import main
        codes = []
        for p in {json.dumps([str(p) for p in BAD])}:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                codes.append(main(["launch", p, "--dry-run"]))
        print(json.dumps({{"codes": codes, "ray": any(m.split(".")[0] == "ray" for m in sys.modules)}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["codes"]) == {2}
    assert result["ray"] is False


def test_error_names_line_of_trial_level_problem(tmp_path: Path):
    """A combination error points at the line that introduced the offending value."""
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        name: combo
        model: tiny-synthetic
        seeds: 1
        steps: 5
        eval_every: 5
        sample:
          num_samples: 20
          seed: 3
          params:
            samples: {choice: [1, 2]}
            baseline.kind: {choice: [greedy, sample_loo]}
        """))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert re.match(rf"{re.escape(str(path))}:1[01]: sample\.params\.(baseline\.kind|samples)", message)
    assert "sample_loo" in message and "samples" in message
