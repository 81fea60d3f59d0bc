"""Read a W&B offline run folder without a W&B server: metadata, config, history, summary,
exit code.

Launch uses the exit code to tell a run that ended from one a killed launch left open;
the tests use the rest to check what a trial logged. ``wandb sync`` is how runs reach the
server; the ``.wandb`` file is W&B's own log of protobuf records (LevelDB-style chunks), a
format W&B does not document, so this is the one module that knows it.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["read_offline_run"]


def _iter_wandb_file(path: str | os.PathLike):
    """The protobuf records of a ``run-<id>.wandb`` file (W&B's LevelDB-style log:
    7-byte file header, 32 KiB blocks, records split into FULL/FIRST/MIDDLE/LAST chunks)."""
    import struct
    from pathlib import Path

    data = Path(path).read_bytes()
    if len(data) < 7 and b":W&B".startswith(data[:4]):
        return  # the W&B service has not written the header yet
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    block, header = 32768, 7
    pos, pending = 7, b""
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + header])
        if kind == 0 and length == 0:
            pos += left  # zero padding to the end of the block
            continue
        chunk = data[pos + header:pos + header + length]
        pos += header + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def read_offline_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What an offline run folder holds: run metadata, config, history, summary, the
    metrics declared with ``define_metric``, exit code.

    For tests and debugging (``wandb sync`` is how runs reach the server). The ``.wandb``
    file is W&B's own log of protobuf records; this reads it without a W&B server.
    """
    import json
    from pathlib import Path

    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file")
    out: dict[str, Any] = {"run_id": None, "group": None, "job_type": None, "tags": [], "project": None,
                           "name": None, "entity": None, "config": {}, "summary": {}, "history": [],
                           "metrics": {}, "exit_code": None}

    def value(item) -> Any:
        key = ".".join(item.nested_key) if item.nested_key else item.key
        return key, json.loads(item.value_json) if item.value_json else None

    for chunk in _iter_wandb_file(files[0]):
        rec = pb.Record()
        rec.ParseFromString(chunk)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(run_id=r.run_id, group=r.run_group, job_type=r.job_type, tags=list(r.tags),
                       project=r.project, name=r.display_name, entity=r.entity or None)
            for item in r.config.update:
                k, v = value(item)
                out["config"][k] = v
        elif kind == "config":
            for item in rec.config.update:
                k, v = value(item)
                out["config"][k] = v
        elif kind == "history":
            row = {}
            for item in rec.history.item:
                k, v = value(item)
                row[k] = v
            out["history"].append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                k, v = value(item)
                out["summary"][k] = v
        elif kind == "metric":   # define_metric: {name or glob: {step_metric, summary: [aggregates]}}
            m = rec.metric
            out["metrics"][m.name or m.glob_name] = {
                "step_metric": m.step_metric or None,
                "summary": [f.name for f, on in m.summary.ListFields() if on is True]}
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    out["config"] = {k: (v.get("value") if isinstance(v, dict) and set(v) <= {"value", "desc"} else v)
                     for k, v in out["config"].items() if k != "_wandb"}
    return out
