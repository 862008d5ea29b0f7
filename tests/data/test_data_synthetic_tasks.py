"""The labelled SYNTHETIC data of the anomaly-detection and segmentation flows: shapes, labels,
determinism and one-line errors."""

from __future__ import annotations

import pytest
import torch

from qfx.data import get_dataset
from qfx.data.synthetic import synthetic_machine_sound, synthetic_shapes


def test_machine_sound_trains_on_normal_frames_and_tests_on_both():
    split = get_dataset("synthetic_machine_sound", n=120, seed=3)
    (x, y), (tx, ty) = split.train.tensors, split.test.tensors
    assert split.input_shape == (640,) and "synthetic" in split.classes[0]
    assert x.shape == (90, 640) and int(y.sum()) == 0  # only normal frames to learn from
    assert tx.shape == (30, 640) and ty.tolist() == [0, 1] * 15
    again = synthetic_machine_sound(120, seed=3)[1].tensors[0]
    assert torch.equal(tx, again)
    # the anomalies are off the normal structure: farther from its principal subspace
    mean = x.mean(0)
    basis = torch.linalg.svd(x - mean, full_matrices=False)[2][:6]
    resid = ((tx - mean) - (tx - mean) @ basis.T @ basis).pow(2).mean(1)
    assert resid[ty == 1].min() > resid[ty == 0].max()


def test_shapes_label_maps():
    split = get_dataset("synthetic_shapes", n=20, size=12)
    x, y = split.train.tensors
    assert split.input_shape == (1, 12, 12) and split.num_classes == 2
    assert x.shape == (15, 1, 12, 12) and y.shape == (15, 12, 12) and y.dtype == torch.int64
    assert set(y.unique().tolist()) == {0, 1}
    # shape pixels are brighter on average than the background
    assert x[:, 0][y == 1].mean() > x[:, 0][y == 0].mean() + 0.5


@pytest.mark.parametrize("fn, kwargs, match", [
    (synthetic_machine_sound, {"n": 2}, "too small"),
    (synthetic_machine_sound, {"rank": 0}, "rank must be"),
    (synthetic_shapes, {"size": 4}, "size must be"),
    (synthetic_shapes, {"seed": -1}, "seed must be"),
])
def test_bad_arguments(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(**kwargs)
