"""rewardsweep: repeatable reward-optimisation sweeps for MMSegmentation models.

Four parts, data flowing one way (spec -> trials -> records -> report):
``sweep`` (the study), ``runners`` (one trial), ``reward`` (the method) and
``analysis`` (the report). ``records`` is the contract between them.
"""

__version__ = "0.1.0"
