"""The mmcv-lite shim: applies only when compiled ops are missing, and touches nothing otherwise."""

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def _has_compiled_ops() -> bool:
    from rewardsweep import mmcv_compat

    return mmcv_compat.has_compiled_mmcv_ops()


@pytest.mark.skipif(_has_compiled_ops(), reason="full mmcv installed (a GPU machine): the shim stays off")
def test_without_compiled_ops_the_shim_lets_mmseg_import():
    out = _run("""
        from rewardsweep import mmcv_compat
        assert not mmcv_compat.has_compiled_mmcv_ops()
        mmcv_compat.import_mmseg()
        import mmcv.ops
        from mmseg.registry import MODELS
        print(getattr(mmcv.ops, "REWARDSWEEP_SHIM", False), MODELS.get("ASPPHead") is not None)
    """)
    assert out == "True True"


def test_point_sample_matches_grid_sample_semantics():
    import torch

    from rewardsweep.mmcv_compat import point_sample

    feat = torch.arange(16.0).reshape(1, 1, 4, 4)
    # Normalised [0, 1] points at pixel centres pick those pixels exactly (align_corners=False).
    points = torch.tensor([[[0.125, 0.125], [0.875, 0.375], [0.375, 0.875]]])
    out = point_sample(feat, points)
    assert out.shape == (1, 1, 3)
    assert out.flatten().tolist() == [0.0, 7.0, 13.0]


def test_other_compiled_ops_fail_with_a_clear_error_naming_the_op():
    out = _run("""
        from rewardsweep import mmcv_compat
        mmcv_compat.apply()
        from mmcv.ops import PSAMask
        try:
            PSAMask("collect", (3, 3))
        except mmcv_compat.MissingCompiledOpError as exc:
            print(str(exc))
    """)
    assert "PSAMask" in out and "compiled mmcv" in out


def test_with_compiled_ops_nothing_is_touched():
    out = _run("""
        import importlib.util, sys, types
        import mmcv
        # Pretend a compiled mmcv is installed: mmcv._ext is importable and mmcv.ops is real.
        fake_ext = types.ModuleType("mmcv._ext")
        sys.modules["mmcv._ext"] = fake_ext
        real_find_spec = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: object() if name == "mmcv._ext" else real_find_spec(name, *a)
        sentinel = types.ModuleType("mmcv.ops")
        sys.modules["mmcv.ops"] = sentinel
        from rewardsweep import mmcv_compat
        applied = mmcv_compat.apply()
        print(applied, sys.modules["mmcv.ops"] is sentinel, hasattr(sentinel, "REWARDSWEEP_SHIM"))
    """)
    assert out == "False True False"
