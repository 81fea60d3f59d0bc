"""Which rewardsweep code this process runs: its version and a hash of its source files.

A launch sends the driver's identity with every trial; the trial compares it with its
own before it trains (:mod:`rewardsweep.sweep.tune`), so a cluster node that runs another
version, another checkout or an edited copy fails in one line instead of producing
results from other code. Stdlib only.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["code_identity", "mismatch"]


@functools.lru_cache(maxsize=1)
def code_identity() -> dict[str, str]:
    """``{"version": "0.3.0", "code": <16 hex>, "where": <package folder>}``: the hash covers
    every ``.py`` file of the installed package (relative path and bytes), read once per process."""
    import rewardsweep

    root = Path(rewardsweep.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return {"version": rewardsweep.__version__, "code": digest.hexdigest()[:16], "where": str(root)}


def mismatch(driver: dict[str, str] | None) -> str | None:
    """Why this process's code is not the driver's (one phrase), or None if it is (or the
    driver sent no identity)."""
    if not driver:
        return None
    mine = code_identity()
    if driver.get("version") != mine["version"]:
        return (f"rewardsweep {mine['version']} ({mine['where']}) runs here but the driver runs "
                f"rewardsweep {driver.get('version')}")
    if driver.get("code") != mine["code"]:
        return (f"the rewardsweep source here ({mine['where']}, code {mine['code']}) differs from the "
                f"driver's (code {driver.get('code')}), both version {mine['version']}")
    return None
