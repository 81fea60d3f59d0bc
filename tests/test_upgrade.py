"""Upgrades never cost finished trials: a study folder written by rewardsweep 0.2.0 (before the
one-schema redesign) resumes with nothing rerun, and tops up with only the new seeds.

``tests/fixtures/study-0.2.0`` is that folder as 0.2.0's ``launch`` wrote it (records,
diagnostics, val counts, start.json, the launch log, and ``spec.yaml``: a spec that sets
every key explicitly, with a grid, a sample draw, class weights, a control grid and a no-op
reference). Ray's own experiment state is left out: a relaunch never reads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rewardsweep.study import layout
from rewardsweep.sweep.launch import launch
from rewardsweep.sweep.spec import load_study

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "study-0.2.0"
NAME = "explicit-0.2.0"


@pytest.fixture
def study(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / NAME
    shutil.copytree(FIXTURE, folder)
    return folder


def _recorded(folder: Path) -> set[str]:
    return {p.stem for p in layout.iter_record_paths(folder)}


def test_the_fixture_is_a_finished_0_2_0_study():
    names = _recorded(FIXTURE)
    assert len(names) == 9 and {n.split("-")[1] for n in names} == {"reward", "mle", "noop"}
    assert '"rewardsweep": "0.2.0"' in (next(iter(layout.iter_record_paths(FIXTURE)))).read_text()


def test_todays_code_expands_the_0_2_0_spec_to_the_same_trials(study: Path):
    expansion = load_study(study / "spec.yaml", storage=str(study.parent)).expansion
    assert {t.trial_name for t in expansion.trials} == _recorded(FIXTURE)


def test_a_relaunch_reruns_nothing(study: Path, tmp_path: Path):
    before = {p.name: p.read_bytes() for p in (study / "records").glob("*.json")}
    result = launch(study / "spec.yaml", storage=str(study.parent), wandb_mode="disabled",
                    trial_fn=_must_not_run, ensure_start=_must_not_run)
    assert result.planned == 9 and result.to_run == []
    assert not any("belong to trials this spec no longer names" in n for n in result.summary.get("notes", []))
    assert {p.name: p.read_bytes() for p in (study / "records").glob("*.json")} == before


def test_a_top_up_runs_only_the_new_seed(study: Path):
    spec = study.parent.parent / "topup.yaml"
    spec.write_text((study / "spec.yaml").read_text().replace("seeds: [0]", "seeds: [0, 1]"))
    result = launch(spec, storage=str(study.parent), dry_run=True)
    assert result.planned == 18
    assert sorted(result.to_run) == sorted(n.replace("-seed0", "-seed1") for n in _recorded(FIXTURE))


def _must_not_run(*args, **kwargs):
    raise AssertionError("a finished trial was run again")


# ----------------------------------------------------------------- the id rule, at the schema

def test_every_trial_key_keeps_existing_config_ids():
    """A trial key added after 0.2.0 defaults to None (hashed only when set): the schema
    as it is today breaks no config id (config.trial.ID_KEYS_0_2's rule)."""
    from rewardsweep.config.trial import TrialConfig, id_stability_problems

    assert id_stability_problems(TrialConfig) == []


def test_a_new_key_with_a_default_is_caught_where_keys_are_declared():
    """What someone adding ``grad_clip: float = 1.0`` (or a baseline's new hyperparameter
    with a default) would see: the key named, before any study folder stops resuming."""
    from pydantic import create_model

    from rewardsweep.config.trial import TrialConfig, id_stability_problems
    from rewardsweep.reward.settings import Baseline

    top = create_model("WithClip", __base__=TrialConfig, grad_clip=(float, 1.0),
                       grad_norm=(float | None, None))
    assert id_stability_problems(top) == ["grad_clip (default 1.0)"]
    baseline = create_model("Baseline2", __base__=Baseline, tau=(float, 0.5))
    grouped = create_model("WithTau", __base__=TrialConfig, baseline=(baseline, baseline()))
    assert id_stability_problems(grouped) == ["baseline.tau (default 0.5)"]


# ----------------------------------------------------------------- two batch streams in one study

def _add_seed(folder: Path, seed: int, seeded: set[str]) -> None:
    """Seed ``seed``'s records as today's code writes them for the arms in ``seeded``
    (``timings.data_wait_s``: per-sample seeded batches), as 0.2.0 did for the others."""
    import json

    for path in sorted((folder / "records").glob("*-seed0.json")):
        record = json.loads(path.read_text())
        record["seed"] = seed
        if record["arm"] in seeded:
            record["timings"] = {**record["timings"], "data_wait_s": 0.0, "workers": 0}
        (folder / "records" / path.name.replace("-seed0", f"-seed{seed}")).write_text(json.dumps(record))


def _notes(folder: Path) -> list[str]:
    from rewardsweep.analysis.collect import collect
    from rewardsweep.analysis.summary import summarize

    return [n for n in summarize(collect([folder])).notes if "seeded batches" in n]


def test_a_study_topped_up_across_the_loader_change_says_it_mixes_two_batch_streams(study: Path):
    assert _notes(study) == []                                 # one stream: nothing to say
    _add_seed(study, 1, seeded={"reward", "mle", "noop"})
    (note,) = _notes(study)
    assert note.startswith("9 finished trial(s) were recorded before per-sample seeded batches") and "and 9 after" in note
    assert "do not share batches" not in note                  # every seed's pairs share one stream
    _add_seed(study, 2, seeded={"reward"})                     # a control added later, on the new stream
    (note,) = _notes(study)
    assert "seeds 2 have arms on both" in note and "noisier there, not biased" in note

def test_a_new_key_inside_a_group_hashed_whole_in_0_2_0_is_caught():
    """``pretrain`` and ``class_weights`` went into 0.2.0's ids whole (optional groups, set or
    None): a sub-key added to them, or a new group's key, follows the same rule, named."""
    from pydantic import create_model

    from rewardsweep.config.trial import Pretrain, TrialConfig, SettingsGroup, id_stability_problems
    from rewardsweep.reward.settings import ClassWeights

    pretrain = create_model("Pretrain2", __base__=Pretrain, lr=(float, 0.01), warmup=(int | None, None))
    with_lr = create_model("WithPretrainLr", __base__=TrialConfig, pretrain=(pretrain | None, None))
    assert id_stability_problems(with_lr) == ["pretrain.lr (default 0.01)"]
    weights = create_model("ClassWeights2", __base__=ClassWeights, floor=(float, 0.1), power=(float, ...))
    with_floor = create_model("WithFloor", __base__=TrialConfig, class_weights=(weights | None, None))
    assert id_stability_problems(with_floor) == ["class_weights.floor (default 0.1)", "class_weights.power (required)"]
    clip = create_model("Clip", __base__=SettingsGroup, max_norm=(float, 1.0), norm_type=(float | None, None))
    with_clip = create_model("WithClip", __base__=TrialConfig, grad_clip=(clip | None, None))
    assert id_stability_problems(with_clip) == ["grad_clip.max_norm (default 1.0)"]


def test_an_unset_key_inside_a_group_keeps_the_0_2_0_ids(study: Path):
    """The rule as the id applies it: a new sub-key (or a new group) that is None is not
    hashed, so every configuration of the 0.2.0 study keeps its id; set, it makes a new one."""
    from rewardsweep.sweep.expand import config_hash

    trials = load_study(study / "spec.yaml", storage=str(study.parent)).expansion.trials
    weighted = [t.config for t in trials if t.config["class_weights"] is not None]
    assert weighted and all(t.config["pretrain"] == {"iters": 30} for t in trials)
    for config in [t.config for t in trials]:
        grown = {**config, "pretrain": {**config["pretrain"], "warmup": None}, "grad_clip": {"max_norm": None}}
        if config["class_weights"] is not None:
            grown["class_weights"] = {**config["class_weights"], "floor": None}
        assert config_hash(grown) == config["config_id"]
        assert config_hash({**grown, "pretrain": {"iters": 30, "warmup": 5}}) != config["config_id"]
    assert config_hash({**weighted[0], "class_weights": {**weighted[0]["class_weights"], "floor": 0.1}}) \
        != weighted[0]["config_id"]
