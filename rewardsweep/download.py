"""A start checkpoint given as an http(s) URL (MMSeg's model zoo): downloaded once into the
cache, checked against the hash its file name carries.

OpenMMLab names its released checkpoints ``<name>_<date>_<time>-<first 8 hex of sha256>.pth``
(torch.hub's convention: ``torch.hub.HASH_REGEX``), e.g.
``deeplabv3_r50-d8_512x1024_80k_cityscapes_20200606_113404-b92cfdd4.pth``. The file lands in
``<cache>/downloads/<hash of the URL>/<file name>`` (``REWARDSWEEP_CACHE``): fetched with
``torch.hub.download_url_to_file`` (a temporary file, moved into place only when whole and
its sha256 matches), with the full sha256 beside it, so every later launch uses it without
the network and notices a damaged copy. Errors are one line (:class:`ConfigError`): offline,
HTTP errors, a hash that does not match.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from rewardsweep.checks import is_url  # noqa: F401  (the one test of "is this a URL")
from rewardsweep.errors import ConfigError

TIMEOUT_S = 60.0                # a stalled connection fails instead of hanging the launch


def file_name(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    return name or "checkpoint.pth"


def hash_prefix(url: str) -> str | None:
    """The sha256 prefix in the URL's file name (``...-b92cfdd4.pth``), if it has one."""
    import re

    match = re.search(r"-([a-f0-9]{6,64})\.[A-Za-z]+$", file_name(url))
    return match.group(1) if match else None


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cached_download(url: str, cache_dir: str | os.PathLike | None = None, timeout: float = TIMEOUT_S) -> Path:
    """The local copy of ``url``: downloaded on first use, verified, reused afterwards."""
    from rewardsweep.storage import default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "downloads"
    path = root / hashlib.sha256(url.encode()).hexdigest()[:16] / file_name(url)
    digest_file = path.with_name(path.name + ".sha256")
    expected = hash_prefix(url)
    if path.is_file():
        recorded = digest_file.read_text().strip() if digest_file.is_file() else None
        actual = _sha256(path)
        if actual == recorded or (recorded is None and expected and actual.startswith(expected)):
            return path
        path.unlink()          # damaged or half-replaced: fetch it again
    path.parent.mkdir(parents=True, exist_ok=True)
    _fetch(url, path, expected, timeout)
    digest_file.write_text(_sha256(path) + "\n")
    return path


def _fetch(url: str, path: Path, expected: str | None, timeout: float) -> None:
    import urllib.error

    from torch.hub import download_url_to_file

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)   # torch.hub's urlopen takes none of its own
    try:
        download_url_to_file(url, str(path), hash_prefix=expected, progress=sys.stderr.isatty())
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"checkpoint: cannot download {url}: HTTP {exc.code} {exc.reason}", key="checkpoint") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(f"checkpoint: cannot download {url}: {reason} (offline? download it yourself "
                          f"and give its path as checkpoint:)", key="checkpoint") from None
    except RuntimeError as exc:
        if "invalid hash value" not in str(exc):
            raise
        raise ConfigError(f"checkpoint: {url}: the downloaded file's sha256 does not start with {expected}, "
                          f"the hash its name carries ({exc}); not kept", key="checkpoint") from None
    finally:
        socket.setdefaulttimeout(previous)
