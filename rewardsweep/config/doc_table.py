"""The parameter table of ``docs/search_spaces.md``, generated from the schema.

    python -m rewardsweep.config.doc_table            # prints the table
    python -m rewardsweep.config.doc_table --write    # rewrites it in docs/search_spaces.md

The table sits between ``<!-- keys:begin -->`` and ``<!-- keys:end -->``; a test checks
the docs hold exactly what this prints, so a new key shows up in the docs by running it.
"""

import argparse
import re
import sys
from pathlib import Path

from rewardsweep.config.spec_schema import SPEC_DEFAULTS
from rewardsweep.config.trial import PARAMS

BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "search_spaces.md"


def _default(key: str) -> str:
    value = SPEC_DEFAULTS.get(key)
    if key == "steps":
        return "required"
    if key in ("class_weights", "pretrain") or value is None:
        return "null" if key != "class_weights.counts" else "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"`{value}`"
    return f"{value:g}"


def key_table() -> str:
    """The markdown table: every key a spec may set, its default and its values."""
    rows = ["| key | default | values |", "|---|---|---|"]
    for key, param in PARAMS.items():
        if param.kind == "group" and key not in ("class_weights",):
            continue
        rows.append(f"| `{key}` | {_default(key)} | {param.help} |")
    return "\n".join(rows)


def with_table(text: str) -> str:
    """``text`` (the docs page) with the table between the markers replaced."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{DOC}: no {BEGIN} ... {END} block")
    return pattern.sub(lambda _: f"{BEGIN}\n{key_table()}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC}")
    args = parser.parse_args(argv)
    if args.write:
        DOC.write_text(with_table(DOC.read_text()))
    else:
        print(key_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
