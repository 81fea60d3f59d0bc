"""A start checkpoint as a file: its hash, and whether it can be a PyTorch checkpoint at all.

Checked wherever a start is used, before anything loads it (a garbage or damaged file
would otherwise train from NaN weights, or fail every trial one by one):

- :func:`checkpoint_problem`: a spec's ``checkpoint:`` file is a PyTorch archive whose
  entries all match their CRC-32 (``torch.save`` writes a zip whose every entry carries
  one, so a flipped bit or a cut-off file is found), or a legacy pickle checkpoint (only
  its first byte can be checked without torch). Stdlib only: the spec is checked before
  torch is imported, in a ``--dry-run`` too.
- :func:`file_hash`: the hash a start is known by (``start.json``, every record); the
  driver compares it before any trial and each trial before it trains.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

__all__ = ["file_hash", "checkpoint_problem"]

_PICKLE_PROTOCOL_2_PLUS = b"\x80"   # torch's legacy format is a pickle stream (protocol >= 2)


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """First 16 hex of the file's sha256 (``OSError`` if it cannot be read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a PyTorch checkpoint (one phrase), or None if it may be one."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if head[:1] == _PICKLE_PROTOCOL_2_PLUS:
        return None
    if head != b"PK\x03\x04":
        return "is not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
                return "is a zip archive but not a PyTorch checkpoint (it has no data.pkl)"
            damaged = archive.testzip()   # reads every entry and checks its CRC-32
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        return f"is a damaged PyTorch checkpoint ({' '.join(str(exc).split()) or type(exc).__name__}; cut off?)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if damaged is not None:
        return f"is a damaged PyTorch checkpoint (entry {damaged} fails its CRC-32 check: corrupted bytes)"
    return None
