"""Digits, synthetic data and the dataset registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qfx import FixedType
from qfx.data import (
    DIGITS_DIVISOR,
    dataset_names,
    get_dataset,
    load_digits_split,
    synthetic_classification,
)


def test_digits_shapes_dtypes_and_sizes() -> None:
    train, test = load_digits_split(test_fraction=0.2, seed=0)
    x, y = train.tensors
    assert len(train) + len(test) == 1797
    assert len(test) == 360
    assert x.shape == (1437, 1, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))


def test_digits_values_are_exact_in_a_ufixed_input_type() -> None:
    train, test = load_digits_split()
    x = torch.cat([train.tensors[0], test.tensors[0]]).double().numpy()
    assert x.min() == 0.0 and x.max() == 16 / DIGITS_DIVISOR < 1.0
    # Every pixel is k/32, so ap_ufixed<5,0> holds it with no rounding or overflow.
    t = FixedType(5, 0, signed=False, rounding="TRN", overflow="WRAP")
    np.testing.assert_array_equal(t.quantize(x), x)


def test_digits_split_is_deterministic_and_stratified() -> None:
    a_train, a_test = load_digits_split(seed=3)
    b_train, b_test = load_digits_split(seed=3)
    assert torch.equal(a_train.tensors[0], b_train.tensors[0])
    assert torch.equal(a_test.tensors[1], b_test.tensors[1])
    c_train, _ = load_digits_split(seed=4)
    assert not torch.equal(a_train.tensors[0], c_train.tensors[0])
    train_frac = torch.bincount(a_train.tensors[1], minlength=10) / len(a_train)
    test_frac = torch.bincount(a_test.tensors[1], minlength=10) / len(a_test)
    assert torch.allclose(train_frac, test_frac, atol=0.01)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, "0.2"])
def test_digits_bad_test_fraction(bad: object) -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=bad)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        load_digits_split(seed=-1)


def test_synthetic_is_deterministic_balanced_and_shaped() -> None:
    train, test = synthetic_classification(200, (2, 6, 6), num_classes=4, seed=7)
    again, _ = synthetic_classification(200, (2, 6, 6), num_classes=4, seed=7)
    other, _ = synthetic_classification(200, (2, 6, 6), num_classes=4, seed=8)
    assert len(train) == 150 and len(test) == 50
    assert train.tensors[0].shape == (150, 2, 6, 6) and train.tensors[1].dtype == torch.int64
    assert torch.equal(train.tensors[0], again.tensors[0])
    assert not torch.equal(train.tensors[0], other.tensors[0])
    counts = torch.bincount(torch.cat([train.tensors[1], test.tensors[1]]))
    assert counts.tolist() == [50, 50, 50, 50]


def test_synthetic_classes_are_separable_by_nearest_mean() -> None:
    # Learnable: the nearest class mean (estimated on train) classifies test well.
    train, test = synthetic_classification(600, (1, 8, 8), num_classes=4, seed=0)
    x, y = train.tensors
    means = torch.stack([x[y == c].mean(0) for c in range(4)]).flatten(1)
    d = torch.cdist(test.tensors[0].flatten(1), means)
    assert (d.argmin(1) == test.tensors[1]).float().mean() > 0.9


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 1}, "n must be"), ({"shape": ()}, "shape"), ({"shape": (0, 2)}, "shape"),
    ({"num_classes": 1}, "num_classes"), ({"test_fraction": 1.5}, "test_fraction"),
    ({"seed": -1}, "seed must be an integer in"),
])
def test_synthetic_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        synthetic_classification(**kwargs)


def test_registry_names_and_metadata() -> None:
    assert dataset_names()[:3] == ("digits", "cifar10", "synthetic")
    split = get_dataset("digits", seed=1)
    assert (split.name, split.input_shape, split.num_classes) == ("digits", (1, 8, 8), 10)
    syn = get_dataset("synthetic", n=90, shape=[3, 4, 4], num_classes=3)
    assert syn.input_shape == (3, 4, 4) and syn.num_classes == 3


def test_registry_errors_are_clear() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; known datasets: digits, "
                                         r"cifar10, synthetic"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match=r"unknown option\(s\) bogus for dataset 'digits'; "
                                         r"allowed: test_fraction, seed"):
        get_dataset("digits", bogus=1)
    with pytest.raises(ValueError, match=r"dataset 'cifar10' needs option\(s\): root"):
        get_dataset("cifar10")
