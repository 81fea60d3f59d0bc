"""Write a file so that a reader never sees half of it, even if the writer is killed.

Every file of a study folder (and the other small JSON files rewardsweep writes) goes
through :func:`atomic_write`: a temporary file in the same folder, renamed into place
(``os.replace`` is atomic on POSIX within a filesystem), after ``fsync``: a crash never
leaves a record's name on an empty or half-written file. The temporary name starts with
:data:`TMP_PREFIX` and ends in ``.tmp``, so it is never taken for a ``*.json`` record and
``records.remove_partial_writes`` can find what a killed writer left.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` all at once; the file gets the modes a plain ``open``
    would give it (``0666`` minus the umask), since collaborators read study folders too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600
        except OSError:  # a filesystem without modes (some SMB mounts): its default stands
            pass
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())   # the bytes are on disk before the name says they are there
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, payload: Any, **dumps: Any) -> Path:
    """:func:`atomic_write` of ``json.dumps(payload, **dumps)``; serialised first, so a value
    JSON cannot hold fails before any file is touched."""
    return atomic_write(path, json.dumps(payload, **dumps))


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to the disk; a filesystem that cannot
    (some network mounts refuse to open a folder) is left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
