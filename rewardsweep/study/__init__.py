"""The study contract shared by the sweep, the trial and the report (stdlib only).

- :mod:`.layout`: the study folder (which file is where) and the name of a trial;
  which folder a spec's ``storage`` names.
- :mod:`.records`: the trial record (:class:`~.records.TrialRecord`), its constructors,
  the rule that says whether a record is valid, reading and writing.
- :mod:`.resume`: what is left to run, from the records (and the launch logs).
- :mod:`.atomic`, :mod:`.timestamps`: how every file here is written, and when.
- :mod:`.synthetic`: made-up records with the real schema, for tests and benchmarks.
"""
