"""The one schema of a study: the trial config (``trial.py``), the spec file (``study.py``),
YAML with line numbers (``yaml.py``) and the one-line messages (``messages.py``).

Pure Python plus pydantic and ruamel.yaml: importing it never loads torch, MMSeg or Ray.
"""
