"""The preset registry is explicit: no import cycle, and a broken import is raised as it is.

Before, a failing import in the dataset presets was swallowed and showed up as
"unknown preset 'deeplabv3-r50-cityscapes'" (review 2026-12-01, §1.3a).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def test_an_import_error_in_a_preset_module_is_raised_not_hidden():
    """A preset module that cannot be imported fails the registry's import, naming the module."""
    result = _run("import sys\n"
                  "sys.modules['rewardsweep.runners.presets.mapillary'] = None  # as if its import failed\n"
                  "from rewardsweep.runners.presets import preset_names\n")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError") and "rewardsweep.runners.presets.mapillary" in last, last


def test_a_missing_dependency_of_a_preset_is_raised_not_unknown_preset():
    """numpy unimportable: the registry (or the build) raises that ImportError; no "unknown preset"."""
    result = _run("import sys\n"
                  "sys.modules['numpy'] = None\n"
                  "from rewardsweep.runners.presets import resolve_setting\n"
                  "resolve_setting('deeplabv3-r50-cityscapes', '/nonexistent')\n")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(("ImportError", "ModuleNotFoundError")) and "numpy" in last, last
    assert "unknown preset" not in result.stderr


def test_importing_the_registry_imports_no_framework():
    """The spec validator imports every preset module: they must not import torch or MMSeg."""
    result = _run("import sys\n"
                  "from rewardsweep.runners.presets import preset_names\n"
                  "assert len(preset_names()) > 1\n"
                  "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mmseg', 'mmengine', 'mmcv'}))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_registry_lists_every_preset_module():
    from rewardsweep.runners import presets
    from rewardsweep.runners.presets import cityscapes, easyportrait, mapillary, tiny

    modules = (tiny, cityscapes, mapillary, easyportrait)
    expected = [p.name for m in modules for p in m.PRESETS]
    assert list(presets.preset_names()) == expected and len(set(expected)) == len(expected)
    assert all(presets.PRESETS[p.name] is p for m in modules for p in m.PRESETS)
