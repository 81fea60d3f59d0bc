"""Let MMEngine's own checkpoints load under torch's ``weights_only`` default (torch >= 2.6).

MMEngine 0.10 loads a checkpoint with a bare ``torch.load(path)``. Since torch 2.6 that
means ``weights_only=True``, which refuses what MMEngine's ``CheckpointHook`` writes
besides the weights: the message hub's ``HistoryBuffer`` (numpy arrays of logged
scalars, its statistics methods pickled by name) and numpy scalars in the run's meta.
``load_from = 'work_dirs/<base>/iter_N.pth'``, the hand-off from a base config to a
reward fine-tuning config, then fails with ``UnpicklingError: Weights only load failed``.

:func:`allow_mmengine_checkpoints` adds exactly those types to torch's allow-list
(``torch.serialization.add_safe_globals``, torch's documented remedy), so such files load
while anything else stays refused. Called by :func:`rewardsweep.mmcv_compat.import_mmseg`,
i.e. by every path that builds an MMSeg model, the ``rewardsweep.mmseg`` plugin included.
"""

from __future__ import annotations

import builtins

_DONE = False


def mmengine_checkpoint_globals() -> list:
    """The non-tensor types an MMEngine ``CheckpointHook`` file holds (numpy 1.25+ or 2.x)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:
        from numpy._core import multiarray   # numpy 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    dtypes = getattr(np, "dtypes", None)
    dtype_classes = [cls for name in getattr(dtypes, "__all__", ())
                     if isinstance(cls := getattr(dtypes, name), type) and issubclass(cls, np.dtype)]
    # getattr: pickle names HistoryBuffer's statistics methods as getattr(HistoryBuffer, 'mean');
    # the weights-only unpickler still calls nothing that is not allow-listed itself
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, builtins.getattr,
            *dtype_classes]


def allow_mmengine_checkpoints() -> bool:
    """Allow-list :func:`mmengine_checkpoint_globals` once; False where torch has no allow-list."""
    global _DONE
    if _DONE:
        return True
    import torch

    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:  # pragma: no cover - torch < 2.4 loads everything anyway
        return False
    add(mmengine_checkpoint_globals())
    _DONE = True
    return True
