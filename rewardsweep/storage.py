"""The folders rewardsweep writes: where the cache is, whether a folder can be written,
which OS errors mean the storage itself is failing, and temporary folders that a later
run can clean up when their owner was killed.

A study writes to three places (the study folder, the checkpoint cache, the W&B folder);
:func:`check_writable` tries each with a real write before anything trains, so a
read-only or full disk is found in a second, not after every trial has trained.
Stdlib only: the driver, the workers and the report all import it.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from rewardsweep.errors import UserError
from rewardsweep.study.atomic import fsync_dir

PROBE_BYTES = 64 * 1024   # about a record's size: a nearly full disk fails here, not at the record

# errnos that say "the storage is failing" (not "this trial is wrong"): retrying the trial
# elsewhere or later without fixing the storage would fail the same way
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EIO, errno.ESTALE})


class StorageError(UserError):
    """A folder rewardsweep must write to cannot be written (one line: path, what, why)."""


def default_cache_dir() -> Path:
    """``$REWARDSWEEP_CACHE``, else ``$XDG_CACHE_HOME/rewardsweep`` (``~/.cache/rewardsweep``)."""
    root = os.environ.get("REWARDSWEEP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rewardsweep"
    )
    return Path(root)


def describe(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: the reason part of a one-line message."""
    code = errno.errorcode.get(exc.errno or 0)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason} ({code})" if code else reason


def check_writable(folder: str | os.PathLike, role: str, fix: str = "") -> Path:
    """Create ``folder`` if needed and write, read back and delete a small file in it.

    Raises :class:`StorageError` naming ``role`` (e.g. "study folder"), the path and the
    OS's reason. ``fix`` is appended (e.g. which setting moves that folder).
    """
    folder = Path(folder)
    probe = folder / f".rewardsweep-write-check-{socket.gethostname()}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
        if probe.stat().st_size != PROBE_BYTES:
            raise OSError(errno.EIO, "a test write came back short")
    except OSError as exc:
        raise StorageError(f"{role} {folder}: cannot write there: {describe(exc)}; expected a writable "
                           f"folder with free space" + (f" ({fix})" if fix else "")) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return folder


def storage_failure(exc: BaseException | None, under: str | os.PathLike) -> OSError | None:
    """The OS error in ``exc``'s chain that says the storage under ``under`` (a study
    folder) is failing: full, read-only, gone. None for anything else, so that, say, an
    unreadable dataset file stays an ordinary trial failure."""
    root = os.path.abspath(under)
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS and exc.filename is not None:
            name = os.path.abspath(os.fsdecode(exc.filename))
            if name == root or name.startswith(root + os.sep):
                return exc
        exc = exc.__cause__ or exc.__context__
    return None


# --------------------------------------------------------------------------- temporary folders

TRIAL_TMP_PREFIX = "rewardsweep-trial-"      # a trial's MMEngine work dir, in the system temp folder
EVAL_TMP_PREFIX = "rewardsweep-eval-"        # a start checkpoint's val evaluation, likewise
PRETRAIN_TMP_PREFIX = "pretrain-"            # MLE pretraining, next to the cached checkpoints


def remove_leftovers(checkpoints_dir: str | os.PathLike | None = None) -> list[Path]:
    """What killed trials, evaluations and pretrainings of this host left behind."""
    removed = remove_stale_temp_dirs(TRIAL_TMP_PREFIX) + remove_stale_temp_dirs(EVAL_TMP_PREFIX)
    checkpoints_dir = checkpoints_dir or default_cache_dir() / "checkpoints"
    return removed + remove_stale_temp_dirs(PRETRAIN_TMP_PREFIX, checkpoints_dir)


def _owner_tag() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-"


def make_temp_dir(prefix: str, dir: str | os.PathLike | None = None) -> Path:
    """A fresh temporary folder named ``<prefix><host>-<pid>-XXXX``: the name says who owns
    it, so :func:`remove_stale_temp_dirs` can remove it if that process dies without cleaning up."""
    return Path(tempfile.mkdtemp(prefix=prefix + _owner_tag(), dir=dir))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # exists, owned by someone else
        return True
    return True


def remove_stale_temp_dirs(prefix: str, dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove ``<prefix><this host>-<pid>-*`` folders whose process is gone (killed mid-run).

    Folders of other hosts (a cache shared by a cluster) and of live processes are left alone.
    """
    folder = Path(dir) if dir is not None else Path(tempfile.gettempdir())
    host_prefix = f"{prefix}{socket.gethostname()}-"
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(host_prefix) and p.is_dir()]
    except OSError:
        return removed
    for path in candidates:
        pid_text = path.name[len(host_prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


# --------------------------------------------------------------------------- locks and syncing

@contextmanager
def file_lock(path: str | os.PathLike, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``flock``; on NFS the kernel maps it to a POSIX
    lock, so processes on other nodes respect it too). If another process holds it,
    ``waiting(holder)`` is called once (``holder``: "pid N on HOST since ...") and this
    one waits. The lock goes with the process, even if it is killed."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            if waiting is not None:
                waiting(handle.read().strip() or "another process")
            fcntl.flock(handle, fcntl.LOCK_EX)   # blocks; Ctrl+C and SIGTERM still interrupt it
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def fsync_tree(folder: str | os.PathLike, files: bool = True) -> None:
    """Flush ``folder``'s files (when ``files``) and the folder itself to the disk: what a
    rename is about to publish must be on disk first, or a crash can leave an empty file
    under the final name."""
    folder = Path(folder)
    if files:
        for path in folder.iterdir():
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
    fsync_dir(folder)
