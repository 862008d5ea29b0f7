"""scikit-learn's bundled 8x8 digits (offline, real data) as torch datasets."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = ["load_digits_split", "DIGITS_DIVISOR"]

# Raw pixels are integers 0..16. Dividing by 32 (not 16) maps them to k/32 in [0, 0.5]: inside
# [0, 1) and exactly representable by ap_ufixed<5,0>, so a fixed-point input layer loses nothing.
# (/16 would produce 1.0, which needs an integer bit.)
DIGITS_DIVISOR = 32.0


def load_digits_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """Deterministic stratified train/test split of scikit-learn's 1,797 8x8 digits.

    Images are float32 shaped (N, 1, 8, 8) with values ``pixel / 32`` (0..16 -> 0..0.5, all
    exact in ``ap_ufixed<5,0>``); labels are int64 0..9.

    Example:
        >>> train, test = load_digits_split(test_fraction=0.2, seed=0)
        >>> len(train), len(test), tuple(train[0][0].shape)
        (1437, 360, (1, 8, 8))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_split_args(test_fraction, seed)
    data = load_digits()
    x = (data.images.astype(np.float32) / np.float32(DIGITS_DIVISOR))[:, None, :, :]
    y = data.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=int(seed), stratify=y
    )
    return _tensors(x, y, idx_train), _tensors(x, y, idx_test)


def _check_split_args(test_fraction: object, seed: object) -> None:
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")


def _tensors(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.from_numpy(np.ascontiguousarray(x[idx])),
                         torch.from_numpy(np.ascontiguousarray(y[idx])))
