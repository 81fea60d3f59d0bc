"""Where the documentation is, for someone who installed the package and has no clone.

The project's URLs are written once, in ``pyproject.toml`` (``[project.urls]``), and read
back here from the installed package's metadata; :data:`FALLBACK` serves a source tree
that was never installed (tests/test_packaging.py checks that the two agree).
:func:`link_docs` turns the ``docs/<name>.md`` the report's text cites into links.
"""

from __future__ import annotations

import re
from functools import lru_cache

FALLBACK = {"Homepage": "https://github.com/rewardsweep/rewardsweep",
            "Documentation": "https://github.com/rewardsweep/rewardsweep/tree/main/docs"}
DOC_PATH = re.compile(r"\bdocs/([A-Za-z0-9_-]+\.md)\b")


@lru_cache(maxsize=None)
def project_urls() -> dict[str, str]:
    """``{label: url}`` of the installed distribution's Project-URL fields."""
    from importlib import metadata

    try:
        fields = metadata.metadata("rewardsweep").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        fields = []
    urls = dict(FALLBACK)
    for field in fields:
        label, _, url = field.partition(",")
        if url.strip():
            urls[label.strip()] = url.strip()
    return urls


def doc_url(name: str) -> str:
    """The URL of ``docs/<name>`` (e.g. ``report.md``)."""
    return f"{project_urls()['Documentation'].rstrip('/')}/{name}"


def link_docs(text: str, link) -> str:
    """``text`` with each ``docs/<name>.md`` replaced by ``link(shown, url)``."""
    return DOC_PATH.sub(lambda m: link(m.group(0), doc_url(m.group(1))), text)
