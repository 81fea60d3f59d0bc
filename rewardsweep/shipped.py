"""The studies shipped with the package, and ``rewardsweep init [NAME]``, which writes one
into the current folder so that a pip install alone can start.

There is one copy of them: ``search_spaces/`` at the repository root (what the README and
the docs cite). The wheel carries it as ``rewardsweep/search_spaces/`` (pyproject.toml maps
it there); a clone or an editable install reads the repository's own folder.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

from rewardsweep.errors import UserError

DEFAULT = "baseline"   # the README's main job


def studies_folder() -> Path:
    """``search_spaces/`` as installed (the wheel), else the repository's (a clone)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "search_spaces", here.parent / "search_spaces"):
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    raise UserError(f"no shipped studies next to {here} (a broken install?); reinstall rewardsweep")


def shipped_studies() -> dict[str, Path]:
    """``{name: path}`` of every shipped study, by file name."""
    return {p.stem: p for p in sorted(studies_folder().glob("*.yaml"))}


def description(path: Path) -> str:
    """The study's ``description:`` line, read without parsing the whole YAML."""
    match = re.search(r"^description:\s*(.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return match.group(1).strip() if match else ""


def init_command(args) -> int:
    """``rewardsweep init [NAME] [--list] [--force]``: write ``NAME.yaml`` here."""
    from rewardsweep.links import doc_url

    studies = shipped_studies()
    if args.list:
        width = max(len(n) for n in studies)
        for name, path in studies.items():
            print(f"{name:<{width}}  {description(path)}")
        return 0
    name = args.name or DEFAULT
    if name.endswith((".yaml", ".yml")):
        name = name.rsplit(".", 1)[0]
    if name not in studies:
        close = difflib.get_close_matches(name, studies, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"init: no shipped study {name!r}; expected one of {', '.join(studies)}{hint} "
                        f"(`rewardsweep init --list` describes them)")
    target = Path(f"{name}.yaml")
    if target.exists() and not args.force:
        raise UserError(f"init: {target.resolve()} exists; remove it or pass --force to overwrite it")
    target.write_bytes(studies[name].read_bytes())
    print(f"wrote {target} ({description(studies[name])})")
    print(f"next: rewardsweep launch {target}    then: rewardsweep report {target}", file=sys.stdout)
    print(f"every key of a study: {doc_url('search_spaces.md')}")
    return 0
