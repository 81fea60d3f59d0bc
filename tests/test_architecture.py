"""The architecture's rules run: the import-linter contracts of pyproject.toml, and no
import cycle anywhere in the package (lazy, in-function imports included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout and "5 kept" in out.stdout, out.stdout[-2000:]


def test_no_import_cycle_in_the_package():
    graph = grimp.build_graph("rewardsweep", cache_dir=None, exclude_type_checking_imports=True)
    modules = sorted(m for m in graph.modules if m.startswith("rewardsweep."))
    assert "rewardsweep.runners.presets.base" in modules and "rewardsweep.config.trial" in modules
    cycles = []
    for module in modules:
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported.startswith("rewardsweep") and graph.find_shortest_chain(importer=imported, imported=module):
                cycles.append(" -> ".join((module, *graph.find_shortest_chain(importer=imported, imported=module))))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
