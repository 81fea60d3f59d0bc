"""Let MMSegmentation import on a machine that has mmcv-lite instead of a compiled mmcv.

mmsegmentation 1.2 imports a few compiled ``mmcv.ops`` at import time (point_sample,
PSAMask, CrissCrossAttention, sigmoid_focal_loss, ...) although DeepLabV3 calls none of
them. When ``mmcv._ext`` is missing we install a stand-in ``mmcv.ops`` module that
supplies ``point_sample`` in pure PyTorch and, for every other op, a placeholder that
raises a clear error naming the op when it is used. With a full mmcv nothing is touched.

Call :func:`import_mmseg` (not ``import mmseg``) anywhere rewardsweep needs MMSeg.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

_SHIM_NAME = "mmcv.ops"


class MissingCompiledOpError(RuntimeError):
    """Raised when a model needs an mmcv op that only a compiled mmcv provides."""


def has_compiled_mmcv_ops() -> bool:
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def point_sample(input, points, align_corners=False, **kwargs):
    """Sample ``input`` at normalised [0, 1] ``points`` (mmcv.ops.point_sample's contract)."""
    import torch.nn.functional as F

    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def _missing_op(name: str):
    message = (
        f"mmcv op '{name}' needs a compiled mmcv (mmcv._ext); this environment has "
        f"mmcv-lite. Install the full mmcv for your torch/CUDA to use models that need it."
    )

    class _MissingOp:
        __qualname__ = __name__ = name

        def __init__(self, *args, **kwargs):
            raise MissingCompiledOpError(message)

        def __call__(self, *args, **kwargs):  # pragma: no cover - __init__ raises first
            raise MissingCompiledOpError(message)

    return _MissingOp


def _build_shim() -> types.ModuleType:
    shim = types.ModuleType(_SHIM_NAME)
    shim.__doc__ = "rewardsweep stand-in for mmcv.ops (mmcv-lite: no compiled ops)."
    shim.__path__ = []  # a package, so "from mmcv.ops.x import y" fails with ImportError
    shim.point_sample = point_sample
    shim.REWARDSWEEP_SHIM = True

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _missing_op(name)

    shim.__getattr__ = __getattr__
    return shim


def apply() -> bool:
    """Install the stand-in ``mmcv.ops`` if needed; return whether it is installed."""
    if has_compiled_mmcv_ops():
        return False
    current = sys.modules.get(_SHIM_NAME)
    if current is not None and getattr(current, "REWARDSWEEP_SHIM", False):
        return True
    import mmcv

    shim = _build_shim()
    sys.modules[_SHIM_NAME] = shim
    mmcv.ops = shim
    return True


def import_mmseg() -> types.ModuleType:
    """Import MMSegmentation (models, datasets, metrics registered), applying the shim first."""
    import warnings

    from rewardsweep.checkpoint_compat import allow_mmengine_checkpoints

    apply()
    allow_mmengine_checkpoints()  # MMEngine's iter_N.pth files under torch's weights_only default
    # Deprecation notices MMSeg prints while building its own losses and heads: not the
    # researcher's concern, and they would interleave with our progress output.
    for module in ("mmseg", "mmengine", "mmcv"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module + r"(\..*)?$")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module + r"(\..*)?$")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
        import mmseg
        importlib.import_module("mmseg.models")
        importlib.import_module("mmseg.datasets")
        importlib.import_module("mmseg.evaluation")
        from mmengine.registry import DefaultScope
        from mmseg.utils import register_all_modules

        # Nested configs (data preprocessor, heads) resolve in the "mmseg" scope.
        register_all_modules(init_default_scope=DefaultScope.get_current_instance() is None)
    return mmseg
