#!/usr/bin/env bash
# Set up rewardsweep in a virtual environment (./.venv by default).
#
# torch and mmcv are the two packages a GPU machine already has in its own builds, so
# this script installs them only where they are missing: the CPU torch and the pure-Python
# mmcv-lite. To reuse an environment that already has CUDA torch + full mmcv, activate it
# and run `REWARDSWEEP_VENV=none ./setup.sh`.
set -euo pipefail
cd "$(dirname "$0")"

venv="${REWARDSWEEP_VENV:-.venv}"
if [ "$venv" != "none" ]; then
    if [ ! -x "$venv/bin/python" ]; then
        "${PYTHON:-python3.11}" -m venv "$venv" 2>/dev/null || "${PYTHON:-python3}" -m venv "$venv"
    fi
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
fi

pip_install() { python -m pip install --disable-pip-version-check -q "$@"; }

if python -c "import torch" 2>/dev/null; then
    echo "setup: keeping torch $(python -c 'import torch; print(torch.__version__)')"
else
    echo "setup: installing CPU torch 2.13.0"
    pip_install "torch==2.13.0"
fi

extras="test"
if python -c "import mmcv" 2>/dev/null; then
    echo "setup: keeping mmcv $(python -c 'import mmcv; print(mmcv.__version__)')"
else
    echo "setup: installing mmcv-lite (pure Python; rewardsweep supplies the few ops DeepLabV3 needs)"
    extras="test,cpu"  # the `cpu` extra of pyproject.toml: mmcv-lite
fi

pip_install -e ".[$extras]"
echo "setup: done ($(python -c 'import rewardsweep; print(rewardsweep.__file__)'))"
