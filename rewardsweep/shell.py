"""How the ``rewardsweep`` command meets the shell: the name it was invoked by (for
next-step hints), output that any terminal encoding can take, and quiet pipes."""

from __future__ import annotations

import codecs
import os
import shutil
import sys

# what the console and the report print beyond ASCII, and what an ASCII terminal gets instead
_ASCII = {"\u0394": "d", "\u00b1": "+-", "\u00b7": "-", "\u2013": "-", "\u2014": "-", "\u2500": "-",
          "\u2026": "...", "\u2265": ">=", "\u2264": "<=", "\u2192": "->", "\u00d7": "x", "\u2248": "~",
          "\u2502": "|", "\u2501": "-", "\u2713": "ok", "\u2717": "x", "\u2022": "*"}


def _ascii_fallback(err: UnicodeEncodeError):
    text = err.object[err.start:err.end]
    return "".join(_ASCII.get(ch, "?") for ch in text), err.end


codecs.register_error("rewardsweep-ascii", _ascii_fallback)


def make_output_safe() -> None:
    """Let stdout/stderr print on any encoding (``PYTHONIOENCODING=ascii``, a C locale):
    characters the terminal cannot show become ASCII look-alikes instead of a crash."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding.startswith("utf") or not hasattr(stream, "reconfigure"):
            continue
        try:
            stream.reconfigure(errors="rewardsweep-ascii")
        except (ValueError, OSError):  # a replaced or closed stream
            pass


def silence_broken_pipe() -> int:
    """After the reader of our stdout went away (``... | head -1``): no traceback, and no
    second BrokenPipeError when Python flushes stdout at exit. Returns the exit status."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 1  # as rich does when its console meets a closed pipe


def invoked_as(argv0: str | None = None) -> str:
    """The command as the user typed it, for hints such as ``next: <this> report runs/x``:
    ``rewardsweep`` when that is what PATH finds, else the path used (``.venv/bin/rewardsweep``),
    or ``python -m rewardsweep``."""
    argv0 = argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")
    name = os.path.basename(argv0)
    if name in ("__main__.py", "cli.py", "-m", "-c", ""):
        on_path = shutil.which("python")
        python = "python" if on_path and os.path.realpath(on_path) == os.path.realpath(sys.executable) \
            else _short(sys.executable)
        return f"{python} -m rewardsweep"
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return name
    return _short(argv0)


def _short(path: str) -> str:
    """``path`` relative to the working directory when that is shorter."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    if not rel.startswith(".."):
        rel = rel if os.sep in rel else os.path.join(".", rel)
    return rel if len(rel) < len(path) else path
