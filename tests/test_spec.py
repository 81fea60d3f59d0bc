"""The search-space spec: every shipped study loads and expands as documented.

Pure Python and fast: no Ray, no torch, no MMSeg (checked in a subprocess below).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from rewardsweep.errors import SpecError
from rewardsweep.study import arms
from rewardsweep.sweep.expand import TrialPlan, config_hash, expand, expand_study
from rewardsweep.sweep.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
SHIPPED = sorted(SPACES.glob("*.yaml"))

# Counts pinned for the smoke study only (tests and installs rely on its size); every
# shipped study is checked for the structural invariants below instead.
# name -> (reward configs, control configs, seeds, grid/sample points, duplicates removed)
PINNED = {"smoke": (2, 1, 2, 2, 0)}

# The trial-config keys of docs/architecture.md (plus checkpoint/pretrain/params).
CONFIG_KEYS = {
    "study", "study_dir", "config_id", "control_id", "arm", "seed", "model", "data_root", "start",
    "steps", "eval_every", "batch_size", "estimator", "samples", "baseline", "normalize_advantage",
    "lr", "optimizer", "class_weights", "aux_head", "threads", "debug", "checkpoint", "pretrain",
    "params", "reference_id", "diagnostics_every", "precision", "workers", "cudnn_benchmark",
    "kl_coef", "kl_in", "entropy_coef", "clip_range", "epochs_per_batch",  # issue 24: null unless set
}


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_space_loads_and_expands(path: Path):
    spec = load_spec(path)
    assert spec.name == path.stem
    exp = expand_study(spec)
    rewards, controls, nseeds = exp.reward_configs, exp.control_configs, len(spec.seeds)
    if path.stem in PINNED:
        assert (rewards, controls, nseeds, exp.points, exp.duplicates) == PINNED[path.stem]
    assert rewards >= 1 and exp.points == rewards + exp.duplicates
    assert (controls >= 1) == (spec.control == "mle")
    assert len(exp.trials) == (rewards + controls + exp.reference_configs) * nseeds
    assert exp.count("reward") == rewards * nseeds
    assert exp.count("mle") == controls * nseeds
    names = [t.trial_name for t in exp.trials]
    assert len(set(names)) == len(names), "every (config, arm, seed) once"
    for t in exp.trials:
        assert isinstance(t, TrialPlan)
        # checkpoints: final marks the trials that keep their weights (a run-time key, not hashed)
        assert set(t.config) == CONFIG_KEYS | ({"checkpoints"} if t.arm in spec.checkpoints else set())
        assert t.config["start"] is None
        assert t.config["config_id"] == t.config_id and t.config["arm"] == t.arm
        assert t.config["seed"] == t.seed
        assert t.config["study"] == spec.name
        assert t.config["study_dir"] == spec.study_dir
        assert config_hash(t.config) == t.config_id
        json.dumps(t.config, allow_nan=False)  # plain JSON


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_same_seeds_in_every_arm_and_control_pairing(path: Path):
    spec = load_spec(path)
    trials = expand(spec)
    seeds = defaultdict(list)
    for t in trials:
        seeds[(t.config_id, t.arm)].append(t.seed)
    assert all(tuple(v) == spec.seeds for v in seeds.values())
    controls = {t.config_id: t for t in trials if t.arm == "mle"}
    for cid, c in controls.items():
        # a paired control names itself; a control_grid variant names the control it varies
        assert controls[c.config["control_id"]].config["control_id"] == c.config["control_id"]
        assert c.config["estimator"] is None and c.config["class_weights"] is None
        assert c.config["aux_head"] == "mle"
    paired = Counter()
    for t in trials:
        if t.arm != "reward":
            continue
        if spec.control == "none":
            assert t.control_id is None
            continue
        control = controls[t.control_id]
        for key in arms.CONTROL.shares:  # same budget, schedule, optimizer, start
            assert control.config[key] == t.config[key], key
        paired[t.control_id] += 1
    if spec.control == "mle":
        own = {cid for cid, c in controls.items() if c.control_id == cid}
        assert set(paired) == own, "every paired control has a reward config"


def test_baseline_study_dedup_and_pairing():
    """The README's main job: three baselines under the measured defaults, their control,
    a tuned cross-entropy and a no-op reference, small enough for a laptop."""
    spec = load_spec(SPACES / "baseline.yaml")
    exp = expand_study(spec)
    rewards = {t.config_id: t for t in exp.trials if t.arm == "reward"}
    kinds = Counter(t.config["baseline"]["kind"] for t in rewards.values())
    assert kinds == {"batch_loo": 1, "sample_loo": 1}
    for t in rewards.values():
        b, c = t.config["baseline"], t.config
        assert c["samples"] == 2 and c["normalize_advantage"] is True and c["aux_head"] == "off"
        assert c["optimizer"]["weight_decay"] == 0.0
        assert b["coef"] == (1.0 if b["kind"] == "batch_loo" else None)
        assert b["decay"] == (0.9 if b["kind"] == "ema" else None)
    (paired,) = {t.control_id for t in rewards.values()}
    tuned = {t.config_id: t for t in exp.trials if t.arm == "mle" and t.config_id != paired}
    lr = rewards[next(iter(rewards))].config["lr"]["start"]
    assert {t.control_id for t in tuned.values()} == {paired}
    assert sorted(round(t.config["lr"]["start"] / lr) for t in tuned.values()) == [3, 10]   # 3x and 10x the lr
    assert exp.reference_configs == 1
    assert {t.config["steps"] for t in exp.trials} == {200}
    # the README's main job stays small
    assert len(exp.trials) <= 40


def test_lr_study_constant_schedule_ignores_end():
    trials = [t for t in expand(load_spec(SPACES / "lr.yaml")) if t.arm == "reward"]
    for t in trials:
        lr = t.config["lr"]
        if lr["schedule"] == "constant":
            assert lr["end"] == lr["start"]
        if lr["schedule"] != "poly":
            assert lr["power"] is None
        assert lr["end"] <= lr["start"]


def test_estimator_study_rwce_ignores_samples():
    trials = [t for t in expand(load_spec(SPACES / "estimator.yaml")) if t.arm == "reward"]
    seen = {(t.config["estimator"], t.config["baseline"]["kind"], t.config["baseline"]["coef"]) for t in trials}
    assert seen == {("reinforce", "batch_loo", 0.1), ("reinforce", "batch_loo", 1.0),
                    ("reward_weighted_ce", "batch_loo", 0.1), ("reward_weighted_ce", "batch_loo", 1.0)}
    for t in trials:
        if t.config["estimator"] == "reward_weighted_ce":
            assert t.params["samples"] is None  # shown as ignored


def test_weights_study_counts_only_when_on():
    trials = [t for t in expand(load_spec(SPACES / "weights.yaml")) if t.arm == "reward"]
    cws = sorted((t.config["class_weights"] or {}).get("smooth", -1) for t in trials[::3])
    assert cws == [-1, 0.01, 0.05, 0.2]
    for t in trials:
        cw = t.config["class_weights"]
        assert cw is None or cw["counts"] == [343675, 336838, 64977, 20560, 13331, 7051]


def test_steps_study_pretrain_and_controls():
    trials = expand(load_spec(SPACES / "steps.yaml"))
    combos = {(t.config["steps"], t.config["pretrain"]["iters"]) for t in trials if t.arm == "mle"}
    assert combos == {(s, i) for s in (50, 100, 200, 400) for i in (300, 2500)}


def test_smoke_is_tiny():
    spec = load_spec(SPACES / "smoke.yaml")
    trials = expand(spec)
    assert spec.seeds == (0, 1)
    assert {t.config["steps"] for t in trials} == {6}
    assert {t.config["eval_every"] for t in trials} == {3}
    assert {t.config["batch_size"] for t in trials} == {4}
    assert len(trials) == 6


# Ids of smoke.yaml. They identify finished trials of existing studies (top-up, resume):
# if a deliberate change of the trial-config schema changes them, update them here and
# say so in the change, because older study folders no longer match.
SMOKE_IDS = {("mle", None): "967f4a47", ("reward", "none"): "b8edf09e", ("reward", "greedy"): "c6b0e147"}


def test_smoke_config_ids_are_stable():
    got = {(t.arm, t.config["baseline"]["kind"]): t.config_id
           for t in expand(load_spec(SPACES / "smoke.yaml"))}
    assert got == SMOKE_IDS


def _ids(path: Path) -> set[tuple[str, str]]:
    return {(t.config_id, t.arm) for t in expand(load_spec(path))}


def test_config_ids_stable_across_processes():
    code = ("import json,sys; from rewardsweep.sweep.spec import load_spec; from rewardsweep.sweep.expand import expand; "
            "print(json.dumps(sorted({t.config_id for t in expand(load_spec(sys.argv[1]))})))")
    outs = []
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        out = subprocess.run([sys.executable, "-c", code, str(SPACES / "baseline.yaml")], env=env,
                             capture_output=True, text=True, check=True, timeout=60).stdout
        outs.append(json.loads(out))
    assert outs[0] == outs[1]
    assert outs[0] == sorted({cid for cid, _ in _ids(SPACES / "baseline.yaml")})


def test_config_ids_independent_of_key_order_storage_and_location(tmp_path: Path):
    a = _write(tmp_path / "a", "s.yaml", """\
        name: order
        model: tiny-synthetic
        seeds: 2
        steps: 20
        eval_every: 10
        fixed:
          estimator: reinforce
          lr: {start: 1.0e-4, end: 1.0e-6, schedule: poly}
          samples: 2
        grid:
          baseline.kind: [none, batch_loo, ema]
          baseline.coef: [0.1, 1.0]
        storage: here
        """)
    b = _write(tmp_path / "b", "other-name.yaml", """\
        grid:
          baseline.coef: [1.0, 0.1]
          baseline.kind: [ema, batch_loo, none]
        storage: /somewhere/else
        eval_every: 10
        fixed:
          samples: 2
          lr.schedule: poly
          lr.end: 0.000001
          lr.start: 0.0001
          estimator: reinforce
        steps: 20
        seeds: [0, 1]
        model: tiny-synthetic
        name: order
        """)
    ids_a, ids_b = _ids(a), _ids(b)
    assert ids_a == ids_b and len(ids_a) == 4 + 1
    # the same file elsewhere, with another storage: same ids, other study folder
    moved = shutil.copy(a, tmp_path / "moved.yaml")
    assert _ids(Path(moved)) == ids_a
    spec = load_spec(a, storage=str(tmp_path / "store"))
    assert spec.study_dir == str(tmp_path / "store" / "order")
    assert {(t.config_id, t.arm) for t in expand(spec)} == ids_a
    # but a value that matters changes the id
    c = _write(tmp_path / "c", "s.yaml", a.read_text().replace("steps: 20", "steps: 30"))
    assert _ids(c).isdisjoint(ids_a)


def test_relative_paths_resolve_against_spec_folder(tmp_path: Path):
    study = tmp_path / "study"
    _write(study, "configs/my_deeplab.py", "model = dict(decode_head=dict(num_classes=3))\n"
                                              "train_dataloader = dict()\nval_dataloader = dict()\n")
    (study / "ckpt").mkdir()
    (study / "ckpt/start.pth").write_bytes(b"\x80\x02}q\x00.")   # a (legacy-format) torch pickle: {}
    counts = study / "counts.json"
    counts.write_text(json.dumps({"counts": [10, 20, 30], "smooth": 0.05}))
    spec_path = _write(study, "s.yaml", """\
        name: paths
        model: configs/my_deeplab.py
        checkpoint: ckpt/start.pth
        data_root: data
        seeds: 1
        steps: 5
        eval_every: 5
        fixed:
          class_weights: {counts: counts.json, smooth: 0.1}
        """)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # not the spec's folder
    try:
        spec = load_spec(os.path.relpath(spec_path))
        trials = expand(spec)
    finally:
        os.chdir(cwd)
    cfg = trials[-1].config
    assert cfg["model"] == str((study / "configs/my_deeplab.py").resolve())
    assert cfg["checkpoint"] == str((study / "ckpt/start.pth").resolve())
    assert cfg["data_root"] == str((study / "data").resolve())
    assert cfg["pretrain"] is None
    assert cfg["class_weights"] == {"counts": str(counts.resolve()), "smooth": 0.1}
    # ids do not depend on where the study folder is
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    assert _ids(copy / "s.yaml") == {(t.config_id, t.arm) for t in trials}


def test_sampling_is_deterministic_and_extends(tmp_path: Path):
    text = SPACES.joinpath("full.yaml").read_text()
    first = [t.params for t in expand(load_spec(SPACES / "full.yaml")) if t.arm == "reward"]
    again = [t.params for t in expand(load_spec(SPACES / "full.yaml")) if t.arm == "reward"]
    assert first == again
    other = _write(tmp_path, "full.yaml", text.replace("seed: 0", "seed: 1"))
    drawn = [t.params for t in expand(load_spec(other)) if t.arm == "reward"]
    assert drawn != first
    more = _write(tmp_path, "more.yaml", text.replace("num_samples: 24", "num_samples: 30"))
    bigger = expand_study(load_spec(more))
    ids_small = {t.config_id for t in expand(load_spec(SPACES / "full.yaml"))}
    assert ids_small <= {t.config_id for t in bigger.trials}  # a top-up keeps the first draws
    assert bigger.points == 30
    for params in first:
        assert 0.8 <= (params["baseline.decay"] or 0.8) < 0.99
        assert params["baseline.coef"] is None or 0.05 <= params["baseline.coef"] <= 1.0


def test_sample_draw_values_are_numpy_generator(tmp_path: Path):
    import numpy as np

    path = _write(tmp_path, "s.yaml", """\
        name: draw
        model: tiny-synthetic
        seeds: 1
        steps: 5
        eval_every: 5
        control: none
        fixed: {baseline.kind: batch_loo}
        sample:
          num_samples: 3
          seed: 7
          params:
            lr.start: {loguniform: [1.0e-5, 1.0e-3]}
            baseline.coef: {uniform: [0.0, 1.0]}
        """)
    got = [(t.config["baseline"]["coef"], t.config["lr"]["start"]) for t in expand(load_spec(path))]
    rng = np.random.default_rng(7)
    want = []
    for _ in range(3):
        coef = float(f"{rng.uniform(0.0, 1.0):.4g}")  # keys in sorted order: baseline.coef, lr.start
        lr = float(f"{np.exp(rng.uniform(np.log(1e-5), np.log(1e-3))):.4g}")
        want.append((coef, lr))
    assert got == want


def test_seed_list_and_control_none(tmp_path: Path):
    path = _write(tmp_path, "s.yaml", """\
        name: seeds
        model: tiny-synthetic
        seeds: [4, 0, 9]
        steps: 5
        eval_every: 5
        control: none
        grid:
          aux_head: [off, mle]
        """)
    trials = expand(load_spec(path))
    assert [t.seed for t in trials] == [4, 0, 9, 4, 0, 9]
    assert {t.arm for t in trials} == {"reward"}
    assert {t.config["aux_head"] for t in trials} == {"off", "mle"}  # YAML 1.2: off is a string


def test_grid_group_values_and_fixed_layering(tmp_path: Path):
    path = _write(tmp_path, "s.yaml", """\
        name: groups
        model: tiny-synthetic
        seeds: 1
        steps: 5
        eval_every: 5
        fixed:
          class_weights.counts: [1, 2, 3, 4, 5, 6]
          optimizer: {type: AdamW, momentum: 0.5}
        grid:
          class_weights: [null, {smooth: 0.1}]
          lr:
            - {start: 1e-3, end: 1e-5}
            - {start: 1e-4, end: 1e-6, schedule: constant}
        """)
    trials = [t for t in expand(load_spec(path)) if t.arm == "reward"]
    assert len(trials) == 4
    got = {(json.dumps(t.config["class_weights"]), t.config["lr"]["start"], t.config["lr"]["end"])
           for t in trials}
    assert got == {("null", 1e-3, 1e-5), ("null", 1e-4, 1e-4),
                   (json.dumps({"counts": [1, 2, 3, 4, 5, 6], "smooth": 0.1}), 1e-3, 1e-5),
                   (json.dumps({"counts": [1, 2, 3, 4, 5, 6], "smooth": 0.1}), 1e-4, 1e-4)}
    assert all(t.config["optimizer"]["momentum"] is None for t in trials)  # AdamW: unused
    assert len({t.control_id for t in trials}) == 2  # one per schedule


def test_overrides_and_defaults(tmp_path: Path):
    path = _write(tmp_path, "s.yaml", """\
        name: defaults
        model: tiny-synthetic
        seeds: 1
        steps: 5
        eval_every: 5
        resources: {cpu: 2.5, gpu: 0.25}
        """)
    spec = load_spec(path, wandb_mode="disabled", max_concurrent=3, storage=str(tmp_path / "store"))
    assert spec.study_dir == str(tmp_path / "store" / "defaults")
    with pytest.raises(SpecError, match=r"^--storage: 's3://bucket/runs/' is a URI; .*must be a path"):
        load_spec(path, storage="s3://bucket/runs/")
    assert spec.wandb == {"project": "rewardsweep", "entity": None, "mode": "disabled", "tags": []}
    assert spec.max_concurrent == 3 and spec.retries == 1 and spec.control == "mle"
    assert spec.resources == {"cpu": 2.5, "gpu": 0.25, "workers": None}
    cfg = expand(spec)[-1].config
    assert cfg["threads"] == 2
    assert cfg["batch_size"] == 8 and cfg["checkpoint"] == "auto" and cfg["pretrain"] is None
    # unset keys take config.trial.TRIAL_DEFAULTS (keys the chosen settings ignore are None)
    from rewardsweep.config.trial import default

    for key in ("estimator", "samples", "lr", "optimizer", "class_weights", "aux_head", "normalize_advantage"):
        assert cfg[key] == default(key), key
    assert cfg["baseline"]["kind"] == default("baseline.kind") == "sample_loo"
    assert cfg["diagnostics_every"] == default("diagnostics_every")
    default_storage = load_spec(path)
    assert default_storage.study_dir == str(Path.cwd() / "runs" / "defaults")
    with pytest.raises(SpecError, match=r"^--wandb: "):
        load_spec(path, wandb_mode="sometimes")


def test_trial_plan_is_frozen_and_hashable():
    t = expand(load_spec(SPACES / "smoke.yaml"))[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.seed = 3  # type: ignore[misc]
    assert len({t, t}) == 1
    assert t.trial_name == f"{t.config_id}-{t.arm}-seed{t.seed}"


def test_expanded_reward_configs_pass_trial_time_validation():
    """The configs handed to run_trial pass the same RewardSettings check as at spec time."""
    settings = pytest.importorskip("rewardsweep.reward.settings")
    for path in SHIPPED:
        for t in expand(load_spec(path)):
            if t.arm != "reward":
                continue
            cfg = dict(t.config)  # run_trial reads null inside a group as "the default"
            for group in ("baseline", "lr", "optimizer"):
                cfg[group] = {k: v for k, v in cfg[group].items() if v is not None}
            settings.RewardSettings.from_config(cfg, source=str(path), batch_size=cfg["batch_size"])


def test_no_torch_mmseg_or_ray_imported():
    """Loading and expanding every shipped space (and a dry run) imports none of them."""
    code = textwrap.dedent(f"""
        import importlib.abc, io, sys, glob, traceback
        HEAVY = ('torch', 'mmseg', 'mmengine', 'mmcv', 'ray', 'wandb')
        first = {{}}

        class Watch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.split('.')[0]
                if top in HEAVY and top not in first:
                    frames = [f for f in traceback.extract_stack() if 'rewardsweep' in f.filename]
                    first[top] = frames[-1].filename if frames else '?'
                return None

        sys.meta_path.insert(0, Watch())
        from rewardsweep.sweep.spec import load_spec
        from rewardsweep.sweep.expand import expand
        from rewardsweep.sweep.table import dry_run
        for p in sorted(glob.glob({str(SPACES / '*.yaml')!r})):
            expand(load_spec(p))
            dry_run(p, file=io.StringIO())
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)
        print(';'.join(sorted(set(m.split('.')[0] for m in heavy))))
        print(';'.join(f'{{k}}={{v}}' for k, v in sorted(first.items()) if k in {{m.split('.')[0] for m in heavy}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip("\n").split("\n")
    heavy = [m for m in lines[0].split(";") if m]
    importers = dict(kv.split("=", 1) for kv in lines[1].split(";") if kv) if len(lines) > 1 else {}
    assert not heavy, f"spec loading imported {heavy}, first from {importers}"


def test_reference_and_control_grid_arms(tmp_path: Path):
    """reference: noop adds one no-update arm per budget; control_grid adds cross-entropy
    arms with their own lr that name the paired control they vary; ids of the rest stay."""
    body = """\
        name: arms
        model: tiny-synthetic
        seeds: 2
        steps: 20
        eval_every: 20
        control: mle
        fixed:
          samples: 2
          lr: {start: 1.0e-2, end: 1.0e-4}
        grid:
          baseline.kind: [sample_loo, greedy]
        """
    plain = expand_study(load_spec(_write(tmp_path, "a.yaml", body)))
    extra = "reference: noop\ncontrol_grid:\n  lr: [{start: 3.0e-2, end: 3.0e-4}, {start: 1.0e-1, end: 1.0e-3}]\n"
    spec = load_spec(_write(tmp_path, "b.yaml", textwrap.dedent(body) + extra))
    exp = expand_study(spec)
    ids = lambda e, arm: {t.config_id for t in e.trials if t.arm == arm}  # noqa: E731
    assert ids(exp, "reward") == ids(plain, "reward")
    assert ids(plain, "mle") < ids(exp, "mle") and len(ids(exp, "mle")) == 3
    assert exp.reference_configs == 1 and exp.count("noop") == 2
    (ref_id,) = ids(exp, "noop")
    (paired,) = ids(plain, "mle")
    for t in exp.trials:
        assert t.config["reference_id"] == ref_id
        if t.arm == "mle" and t.config_id != paired:
            assert t.control_id == paired and t.config["lr"]["start"] in (3e-2, 1e-1)
            assert t.config["lr"]["end"] == t.config["lr"]["start"] / 100
        assert config_hash(t.config) == t.config_id
    assert {t.seed for t in exp.trials if t.arm == "noop"} == set(spec.seeds)


def test_docs_parameter_table_is_the_schema():
    """docs/search_spaces.md's key table is generated from the schema (config/doc_table.py)."""
    from rewardsweep.config.doc_table import key_table, with_table

    text = (ROOT / "docs" / "search_spaces.md").read_text()
    assert with_table(text) == text, "run: python -m rewardsweep.config.doc_table --write"
    table = key_table()
    from rewardsweep.config.trial import PARAMS

    for key in PARAMS:  # every leaf a spec may set has a row
        assert PARAMS[key].kind == "group" or f"| `{key}` |" in table, key
    assert "| `samples` | 2 |" in table and "| `baseline.kind` | `sample_loo` |" in table


def test_control_grid_point_equal_to_the_paired_control_runs_once_and_reference_id_is_portable(tmp_path: Path):
    body = """\
        name: arms
        model: tiny-synthetic
        data_root: data
        seeds: 2
        steps: 20
        eval_every: 20
        reference: noop
        fixed:
          samples: 2
          lr: {start: 1.0e-2, end: 1.0e-4}
        control_grid:
          lr: [{start: 1.0e-2, end: 1.0e-4}, {start: 3.0e-2, end: 3.0e-4}]
        """
    here = expand_study(load_spec(_write(tmp_path, "a.yaml", body), storage=str(tmp_path / "one")))
    names = [t.trial_name for t in here.trials]
    assert len(names) == len(set(names)), "every (config, arm, seed) once"
    assert here.control_configs == 2  # the paired control and the 3x-lr variant
    there = expand_study(load_spec(_write(tmp_path / "elsewhere", "a.yaml", body), storage=str(tmp_path / "two")))
    assert {t.config_id for t in there.trials} == {t.config_id for t in here.trials}


def test_a_key_added_to_the_schema_keeps_the_ids_of_configurations_that_do_not_use_it():
    """Adding a hyperparameter (a new baseline's, say) must not re-id every study's configurations."""
    config = next(t.config for t in expand(load_spec(SPACES / "smoke.yaml")) if t.arm == "reward")
    grown = json.loads(json.dumps(config))
    grown["baseline"]["shrink"] = None            # the new key, unset/ignored here
    grown["new_top_level_key"] = None
    assert config_hash(grown) == config_hash(config) == config["config_id"]
    grown["baseline"]["shrink"] = 0.5             # used: a different configuration
    assert config_hash(grown) != config_hash(config)
    dropped = json.loads(json.dumps(config))
    dropped["baseline"]["coef"] = 0.25           # a key of 0.2.0 changes the id as it always did
    assert config_hash(dropped) != config_hash(config)


# ----------------------------------------------------------------- the top level, declared once

def test_every_top_level_key_is_on_the_loaded_spec_as_validated():
    """``Spec`` is the validated ``StudyFile`` plus what loading resolves: every top-level
    field reads back as validated, except the ones ``Spec`` declares itself (resolved)."""
    from rewardsweep.config.spec_schema import Spec, StudyFile, _declared
    from rewardsweep.config.yaml import load_yaml

    path = SPACES / "smoke.yaml"
    spec = load_spec(path)
    top = StudyFile.model_validate(load_yaml(path.read_text(), str(path))[0])
    assert set(StudyFile.model_fields) <= set(Spec.model_fields)
    inherited = [name for name in StudyFile.model_fields if name not in _declared(Spec)]
    assert {"name", "eval_every", "control", "reference", "retries", "checkpoints", "max_trials"} <= set(inherited)
    for name in inherited:
        assert getattr(spec, name) == getattr(top, name), name
    assert spec.seeds == (0, 1) and spec.model == "tiny-synthetic" and spec.wandb["tags"] == ["smoke"]
    assert Path(spec.storage).is_absolute() and spec.resources["cpu"] == 1.0 and spec.threads == 1


# The whole edit for a new top-level key: one StudyFile field (a non-null default, so that
# `timeout_s: null` must mean it too).
TIMEOUT_FIELD = '''    timeout_s: checked(_noted(int_at_least(1), " (seconds a trial may run)")) = Field(
        3600, description="seconds a trial may run")
'''
TIMEOUT_PROBE = '''
import json, sys
from rewardsweep.errors import SpecError
from rewardsweep.sweep.spec import load_study
out = {}
for name in sys.argv[1:]:
    try:
        study = load_study(name)
        out[name] = [study.spec.timeout_s, sorted(t.trial_name for t in study.expansion.trials)]
    except SpecError as exc:
        out[name] = str(exc)
print(json.dumps(out))
'''


def test_a_new_top_level_key_is_one_studyfile_field(tmp_path: Path):
    """A copy of the package with one field added to ``StudyFile`` (config/spec_schema.py, the only
    file changed) reads the key onto the loaded spec, its default and `null` included,
    checks it with a one-line error, and changes no trial (a subprocess on the copy, ~3 s)."""
    import rewardsweep

    src = Path(rewardsweep.__file__).parent
    pkg = tmp_path / "pkg"
    shutil.copytree(src, pkg / "rewardsweep", ignore=shutil.ignore_patterns("__pycache__"))
    schema = pkg / "rewardsweep" / "config" / "spec_schema.py"
    anchor = '    @model_validator(mode="before")\n    @classmethod\n    def _null_groups_are_defaults'
    assert schema.read_text().count(anchor) == 1
    schema.write_text(schema.read_text().replace(anchor, TIMEOUT_FIELD + "\n" + anchor))
    changed = [p.relative_to(pkg) for p in (pkg / "rewardsweep").rglob("*.py")
               if p.read_bytes() != (src / p.relative_to(pkg / "rewardsweep")).read_bytes()]
    assert changed == [Path("rewardsweep/config/spec_schema.py")]
    smoke = (SPACES / "smoke.yaml").read_text()
    specs = {"set": "timeout_s: 30\n", "null": "timeout_s: null\n", "unset": "", "bad": "timeout_s: 0\n"}
    for name, line in specs.items():
        (tmp_path / f"{name}.yaml").write_text(smoke + line)
    done = subprocess.run([sys.executable, "-c", TIMEOUT_PROBE, *(f"{n}.yaml" for n in specs)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(pkg)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    trials = sorted(t.trial_name for t in expand(load_spec(SPACES / "smoke.yaml")))
    assert out["set.yaml"] == [30, trials] and out["null.yaml"] == [3600, trials] and out["unset.yaml"] == [3600, trials]
    lines = smoke.count("\n") + 1
    assert out["bad.yaml"] == (f"bad.yaml:{lines}: timeout_s: 0 is too small; expected an integer >= 1 "
                               f"(seconds a trial may run)"), out["bad.yaml"]


def test_the_spec_key_lists_are_read_from_the_schema():
    """What a control_grid may vary is marked on the schema's fields, and the parameters a spec
    may give at the top level are the StudyFile fields that are trial parameters."""
    from rewardsweep.config.spec_schema import CONTROL_GRID_GROUPS, TOP_LEVEL_PARAMS, StudyFile
    from rewardsweep.config.trial import PARAMS, TrialParams

    assert CONTROL_GRID_GROUPS == ("lr", "optimizer")
    assert all(TrialParams.model_fields[g].json_schema_extra == {"control_grid": True} for g in CONTROL_GRID_GROUPS)
    assert TOP_LEVEL_PARAMS == ("checkpoint", "pretrain", "steps", "batch_size")
    assert set(TOP_LEVEL_PARAMS) == set(StudyFile.model_fields) & set(PARAMS)


# The whole spec-side edit for a trial key that is a new group: its group model and one
# TrialParams field, in config/trial.py (the runners' use of it apart).
NEW_GROUP = '''class GradClip(SettingsGroup):
    max_norm: checked(or_null(number_between(0.0, lo_open=True), "null (off)")) = Field(
        None, description="clip the gradient norm at this value")


'''
NEW_GROUP_FIELD = '''    grad_clip: GradClip | None = Field(None, description="gradient clipping")

'''
GROUP_PROBE = '''
import json, sys
from rewardsweep.config.trial import validate_trial_config
from rewardsweep.sweep.spec import load_study
out = {}
for name in sys.argv[1:]:
    trials = load_study(name).expansion.trials
    for t in trials:
        validate_trial_config(t.config, source=t.trial_name)
    out[name] = [[t.trial_name, t.config.get("grad_clip"), t.params.get("grad_clip.max_norm")] for t in trials]
print(json.dumps(out))
'''


def test_a_new_trial_key_that_is_a_new_group_is_one_place_in_the_schema(tmp_path: Path):
    """A copy of the package with a new group (``grad_clip: {max_norm}``) declared in
    config/trial.py, the only file changed: a spec fixes and varies it, the trial configs
    carry it, the trial schema takes them, and the configurations that leave it unset keep
    their ids (a subprocess on the copy, ~3 s)."""
    import rewardsweep

    src = Path(rewardsweep.__file__).parent
    pkg = tmp_path / "pkg"
    shutil.copytree(src, pkg / "rewardsweep", ignore=shutil.ignore_patterns("__pycache__"))
    schema = pkg / "rewardsweep" / "config" / "trial.py"
    text = schema.read_text()
    cls, method = "class TrialParams(RewardSettings):", "    def ignored_keys(self) -> tuple[str, ...]:"
    assert text.count(cls) == 1 and text.count(method) == 1
    schema.write_text(text.replace(cls, NEW_GROUP + cls).replace(method, NEW_GROUP_FIELD + method))
    changed = [p.relative_to(pkg) for p in (pkg / "rewardsweep").rglob("*.py")
               if p.read_bytes() != (src / p.relative_to(pkg / "rewardsweep")).read_bytes()]
    assert changed == [Path("rewardsweep/config/trial.py")]
    smoke = (SPACES / "smoke.yaml").read_text()
    assert smoke.count("\nfixed:\n") == 1 and smoke.count("\ngrid:\n") == 1
    specs = {"unset": smoke, "fixed": smoke.replace("\nfixed:\n", "\nfixed:\n  grad_clip: {max_norm: 1.0}\n"),
             "grid": smoke.replace("\ngrid:\n", "\ngrid:\n  grad_clip.max_norm: [0.5, 1.0]\n")}
    for name, body in specs.items():
        (tmp_path / f"{name}.yaml").write_text(body)
    done = subprocess.run([sys.executable, "-c", GROUP_PROBE, *(f"{n}.yaml" for n in specs)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(pkg)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    today = sorted(t.trial_name for t in expand(load_spec(SPACES / "smoke.yaml")))
    assert sorted(n for n, _, _ in out["unset.yaml"]) == today                  # ids kept
    assert {tuple(g.items()) for _, g, _ in out["unset.yaml"]} == {(("max_norm", None),)}
    fixed = [(n, g) for n, g, _ in out["fixed.yaml"] if "-reward-" in n]
    assert len(fixed) == 4 and all(g == {"max_norm": 1.0} for _, g in fixed)
    assert not {n for n, _ in fixed} & set(today)                                # set: new configurations
    varied = {(n.split("-")[0], p) for n, _, p in out["grid.yaml"] if "-reward-" in n}
    assert sorted(p for _, p in varied) == [0.5, 0.5, 1.0, 1.0] and len({c for c, _ in varied}) == 4
