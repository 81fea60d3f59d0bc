"""Class weights from pixel counts (METHOD.md, "Class weights") and the counts file."""

import json

import pytest
import torch

from rewardsweep.errors import ConfigError
from rewardsweep.reward.class_weights import class_weights_from_counts, counts_record, load_counts


def test_formula_on_known_counts():
    counts, s = [100.0, 300.0, 600.0], 0.1  # sum 1000, s * sum = 100
    raw = [1 / 200, 1 / 400, 1 / 700]
    expected = [3 * r / sum(raw) for r in raw]
    w = class_weights_from_counts(counts, s)
    assert w.dtype == torch.float32
    assert torch.allclose(w, torch.tensor(expected), rtol=1e-6)
    assert w.mean().item() == pytest.approx(1.0)
    # no smoothing: inverse frequency, still mean 1
    w0 = class_weights_from_counts([1, 2, 4, 8], 0.0)
    inv = torch.tensor([1.0, 0.5, 0.25, 0.125])
    assert torch.allclose(w0, 4 * inv / inv.sum())
    # large smoothing flattens towards 1
    assert torch.allclose(class_weights_from_counts([1, 1000], 1e6), torch.ones(2), atol=1e-3)


@pytest.mark.parametrize(
    "counts,smooth,num_classes,key",
    [
        ([1, 2], 0.1, 3, "class_weights.counts"),
        ([1, -2, 3], 0.1, None, "class_weights.counts"),
        ([], 0.1, None, "class_weights.counts"),
        ("abc", 0.1, None, "class_weights.counts"),
        ([1, 2, 3], -0.5, None, "class_weights.smooth"),
        ([0, 2, 3], 0.0, None, "class_weights.counts"),  # zero count, zero smoothing: infinite weight
    ],
)
def test_bad_input_names_the_key(counts, smooth, num_classes, key):
    with pytest.raises(ConfigError) as info:
        class_weights_from_counts(counts, smooth, num_classes)
    message = str(info.value)
    assert key in message and "\n" not in message


def test_load_counts_roundtrip(tmp_path):
    record = counts_record("synthetic-v1", "train", ["a", "b", "c"], [10, 20, 70], 0.05)
    assert record["weights"] == pytest.approx(class_weights_from_counts([10, 20, 70], 0.05).tolist(), rel=1e-6)
    path = tmp_path / "counts.json"
    path.write_text(json.dumps(record))
    loaded = load_counts(path)
    assert loaded.counts == (10.0, 20.0, 70.0)
    assert loaded.class_names == ("a", "b", "c") and loaded.smooth == 0.05


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        (json.dumps({"class_names": ["a"]}), "counts"),
        (json.dumps({"class_names": ["a", "b"], "counts": [1]}), "counts"),
        (json.dumps({"counts": [1, -1]}), "counts"),
    ],
)
def test_load_counts_errors(tmp_path, content, needle):
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_counts(path)
    assert needle in str(info.value) and str(path) in str(info.value)
