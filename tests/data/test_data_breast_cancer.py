"""The breast-cancer split: sizes, stratification, determinism, train-only standardisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from qfx.data import BREAST_CANCER_CLASSES, get_dataset, load_breast_cancer_split


def test_shapes_dtypes_sizes_and_stratification() -> None:
    train, test = load_breast_cancer_split(test_fraction=0.2, seed=0)
    (x, y), (xt, yt) = train.tensors, test.tensors
    assert (len(train), len(test)) == (455, 114)
    assert x.shape == (455, 30) and xt.shape == (114, 30) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) == set(yt.tolist()) == {0, 1}
    # 212 malignant / 357 benign: stratified, both splits keep the ratio to one sample
    assert int((y == 0).sum()) + int((yt == 0).sum()) == 212
    assert abs(float((y == 0).double().mean()) - float((yt == 0).double().mean())) < 0.01


def test_standardised_with_train_statistics_only() -> None:
    train, test = load_breast_cancer_split(seed=0)
    x, xt = (t.tensors[0].double().numpy() for t in (train, test))
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-6)
    # the same features standardised by hand from the raw data and the train rows' statistics
    data = load_breast_cancer()
    idx_tr, idx_te = train_test_split(np.arange(569), test_size=0.2, random_state=0,
                                      stratify=data.target)
    raw_tr, raw_te = data.data[idx_tr], data.data[idx_te]
    mean, std = raw_tr.mean(0), raw_tr.std(0)
    np.testing.assert_array_equal(xt, ((raw_te - mean) / std).astype(np.float32))
    np.testing.assert_array_equal(x, ((raw_tr - mean) / std).astype(np.float32))
    # statistics over all 569 samples (test leaking into them) would give other test features
    leaky = (raw_te - data.data.mean(0)) / data.data.std(0)
    assert not np.allclose(xt, leaky, atol=1e-3)
    assert np.array_equal(test.tensors[1].numpy(), data.target[idx_te])


def test_split_is_deterministic_per_seed() -> None:
    a_train, a_test = load_breast_cancer_split(seed=5)
    b_train, b_test = load_breast_cancer_split(seed=5)
    c_train, _ = load_breast_cancer_split(seed=6)
    assert torch.equal(a_train.tensors[0], b_train.tensors[0])
    assert torch.equal(a_test.tensors[1], b_test.tensors[1])
    assert not torch.equal(a_train.tensors[0], c_train.tensors[0])


def test_registry_entry_and_bad_arguments() -> None:
    split = get_dataset("breast_cancer", test_fraction=0.25, seed=1)
    assert (split.name, split.input_shape, split.num_classes) == ("breast_cancer", (30,), 2)
    assert split.classes == list(BREAST_CANCER_CLASSES) == ["malignant", "benign"]
    assert len(split.test) == 143
    with pytest.raises(ValueError, match="test_fraction must be a number in"):
        load_breast_cancer_split(test_fraction=1.0)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        get_dataset("breast_cancer", seed=-1)
