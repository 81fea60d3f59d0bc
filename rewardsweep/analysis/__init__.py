"""analysis: the report of a study, from trial records only (never Ray, torch or MMSeg).

- :mod:`.collect`  records (folders, W&B runs) -> tidy tables; top-ups, start checks
- :mod:`.stats`    small pure functions over arrays (scipy / statsmodels underneath)
- :mod:`.summary`  one row per configuration: spread across seeds, paired test vs control
- :mod:`.plots`    PNG plots (matplotlib Agg)
- :mod:`.render`   console table, report.md, self-contained report.html, CSVs
- :mod:`.wandb_io` W&B public API in, report run out (wandb imported lazily)
- :mod:`.report`   ``rewardsweep report``: find the study and run the above

How to read a report: docs/report.md.
"""
