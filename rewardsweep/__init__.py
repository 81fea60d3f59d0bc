"""rewardsweep: repeatable reward-optimisation sweeps for MMSegmentation models.

Four parts, data flowing one way (spec -> trials -> records -> report):
``sweep`` (the study), ``runners`` (one trial), ``reward`` (the method) and
``analysis`` (the report). ``records`` is the contract between them.
"""

import os as _os

__version__ = "0.3.0"

# An idle OpenMP thread sleeps instead of spinning. On a shared machine a spinning torch
# thread takes the core its busy sibling needs, and every parallel op waits for the one
# that lost its core: pretraining with 2 threads next to one CPU-bound process ran ~100x
# slower (benchmarks/bench_load.py). Read once, when torch loads OpenMP, so it is set here,
# before any part imports torch; an explicit choice of the user's is kept.
if not any(k in _os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
