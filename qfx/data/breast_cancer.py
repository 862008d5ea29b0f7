"""scikit-learn's bundled Wisconsin breast-cancer data (offline, real data) as torch datasets."""

from __future__ import annotations

import numpy as np
from torch.utils.data import TensorDataset

from qfx.data.digits import _check_split_args, _tensors

__all__ = ["load_breast_cancer_split", "BREAST_CANCER_CLASSES"]

#: scikit-learn's target names, in label order (0 = malignant, 1 = benign)
BREAST_CANCER_CLASSES = ("malignant", "benign")


def load_breast_cancer_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """Deterministic stratified train/test split of the 569 Wisconsin breast-cancer samples.

    Features are float32 shaped (N, 30), standardised with the mean and standard deviation of
    the TRAIN split only (the test samples never enter the statistics); labels are int64, 0
    (malignant) or 1 (benign).

    Example:
        >>> train, test = load_breast_cancer_split(test_fraction=0.2, seed=0)
        >>> len(train), len(test), tuple(train[0][0].shape)
        (455, 114, (30,))
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    _check_split_args(test_fraction, seed)
    data = load_breast_cancer()
    x = data.data.astype(np.float64)
    y = data.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=int(seed), stratify=y
    )
    mean = x[idx_train].mean(axis=0)
    std = x[idx_train].std(axis=0)
    x = ((x - mean) / std).astype(np.float32)
    return _tensors(x, y, idx_train), _tensors(x, y, idx_test)
