"""Where a launch's Ray is, and joining or starting it: the target (``--address``,
``RAY_ADDRESS``, a local ``ray start`` cluster, else a new private Ray), a quick probe of a
cluster's GCS port so an unreachable cluster fails in seconds, ``ray.init``, the slots a
study's resources get.

Importing this module quiets Tune before it is imported (no console reporter, no
"resume with Tuner.restore" hints: rewardsweep resumes from records; no per-result
CSV/TensorBoard files): ``worker`` and ``tune`` import it first.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

# Quiet Tune before it is imported: no console reporter, no "resume with Tuner.restore"
# hints (rewardsweep resumes from records), no per-result CSV/TensorBoard files.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "60")

# --------------------------------------------------------------------------- Ray

@dataclass(frozen=True)
class RayTarget:
    """Where a launch's Ray is: a new private instance here (``address`` None) or a running
    cluster, and why (:func:`ray_target`)."""

    given: str | None = None      # what to hand to ray.init ("local": a new private instance)
    address: str | None = None    # host:port of the cluster we join; None: start one here
    origin: str = "local"         # "--address", "--address auto", "RAY_ADDRESS" or "local"
    note: str | None = None       # a `ray start` cluster on this node that a plain launch left alone

    @property
    def joins(self) -> bool:
        return self.address is not None or (self.given or "").startswith("ray://")


CONNECT_TIMEOUT_S = 5.0       # a TCP probe of the cluster's GCS port before ray.init


def ray_target(address: str | None = None) -> RayTarget:
    """Resolve and reach the Ray cluster a launch uses.

    ``--address`` (``auto``: the cluster ``ray start`` runs on this node; ``HOST:PORT``;
    ``ray://...``; ``local``: a new private Ray), else ``RAY_ADDRESS`` (same forms), else
    a new private Ray on this machine. A plain launch never joins a ``ray start`` cluster
    by itself, unlike a bare ``ray.init()``: on a shared node that cluster may be someone
    else's, from another environment (docs/cluster.md, "Which Ray a launch uses"); the
    target's ``note`` says that one runs and how to join it.

    Raises :class:`UserError` in one line, within seconds, when the address names no
    running cluster: ``ray.init`` itself retries an unreachable address for minutes.
    """
    from rewardsweep.errors import UserError

    env = os.environ.get("RAY_ADDRESS") or None
    given = address or env
    origin = ("--address auto" if address == "auto" else "--address") if address else \
        ("RAY_ADDRESS" if env else "local")
    if given is None or given == "local":
        note = None
        if given is None:
            running = _local_cluster()
            if running:
                note = (f"a `ray start` cluster runs on this node ({running}) but a plain launch never joins "
                        f"one; --address auto does")
        return RayTarget(given="local", origin=origin, note=note)
    shown = f"{origin} {given}" if origin != "--address auto" else "--address auto"
    if given.startswith("ray://"):
        return RayTarget(given=given, origin=origin)  # Ray Client: ray.init reports its own errors
    try:
        # Ray's own resolution ("auto": the `ray start` record); private, so a Ray without
        # it just gets the address handed to ray.init unprobed
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return RayTarget(given=given, address=given, origin=origin)
    try:
        found = canonicalize_bootstrap_address(given)
    except ConnectionError:
        raise UserError(f"{shown}: no running Ray cluster found on this machine; start one with "
                        f"`ray start --head`, give its HOST:PORT, or leave --address out to run "
                        f"on a private Ray on this machine") from None
    except (ValueError, OSError) as exc:
        raise UserError(f"{shown}: not a Ray address ({exc}); expected HOST:PORT, auto or local") from None
    if found is None:
        return RayTarget(given="local", origin="local")
    problem = _probe_gcs(found)
    if problem:
        stale = " (a stale address of a stopped `ray start`? run `ray stop`)" if given == "auto" else ""
        raise UserError(f"{shown}: cannot reach the Ray cluster at {found}{stale}: {problem}; "
                        f"is `ray start --head` running there?")
    return RayTarget(given=given, address=found, origin=origin)


def _local_cluster() -> str | None:
    """The address of a live cluster that ``ray start`` recorded on this node, if any."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001 - none recorded (ConnectionError), or a Ray without this helper
        return None
    if not found or _probe_gcs(found, timeout=1.0):
        return None
    return found


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _probe_gcs(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why ``address`` is no Ray GCS (None: it looks like one), in a few seconds at most.

    A TCP connect, then the HTTP/2 greeting every gRPC server (the GCS is one) answers with
    a SETTINGS frame. Needed because ``ray.init`` retries a dead or wrong port for minutes,
    printing C++ warnings, and cannot be interrupted meanwhile."""
    host, _, port = address.rpartition(":")
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return None  # a TLS handshake comes first; ray.init checks the rest
        try:
            sock.sendall(_H2_PREFACE)
            reply = sock.recv(9)
        except OSError:
            return f"it accepts a connection but gives no gRPC answer within {timeout:g} s (not a Ray port?)"
    if len(reply) < 4 or reply[3] != 0x04:
        return f"something listens there but does not answer as a Ray cluster (gRPC) within {timeout:g} s"
    return None


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             verbose: bool = False, target: RayTarget | None = None) -> bool:
    """Join the cluster ``address`` resolves to (:func:`ray_target`) or start Ray on this
    machine (all its CPUs, or ``num_cpus``). Returns True if we made the connection (the
    caller shuts it down), False if Ray was already up."""
    import ray

    from rewardsweep.errors import UserError

    if ray.is_initialized():
        return False
    target = target or ray_target(address)
    if not verbose:
        # "Token authentication is enabled ..." is Ray's default, not news for a user
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=verbose,
                                  logging_level=logging.INFO if verbose else logging.WARNING,
                                  configure_logging=True)
    if target.joins:
        # a cluster's resources are its own: ray.init refuses num_cpus/num_gpus when joining
        try:
            ray.init(address=target.given, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{target.origin}: could not join the Ray cluster at "
                            f"{target.address or target.given}: {first}") from None
    else:  # "local": a new private instance, even when a `ray start` cluster runs on this node
        ray.init(address=target.given or "local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    _quiet_loggers(verbose)
    return True


def _quiet_loggers(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(level if verbose else logging.CRITICAL)


def ray_is_up() -> bool:
    import ray

    return ray.is_initialized()


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def cluster_cpus() -> float:
    """The CPUs of the cluster Ray is connected to."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


def cluster_slots(cpu: float, gpu: float, max_concurrent: int | None, trials: int) -> int:
    """How many trials can run at once on the cluster Ray is connected to."""
    import ray

    res = ray.cluster_resources()
    slots = int(res.get("CPU", 0) // cpu) if cpu else trials
    if gpu:
        slots = min(slots, int(res.get("GPU", 0) // gpu))
    if max_concurrent:
        slots = min(slots, max_concurrent)
    return max(0, min(slots, trials))


