"""A learnable synthetic classification set (class-dependent Gaussian blobs) for fast tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import TensorDataset

__all__ = ["synthetic_classification", "synthetic_kws", "synthetic_vww"]


def synthetic_classification(
    n: int = 512,
    shape: Sequence[int] = (1, 8, 8),
    num_classes: int = 4,
    seed: int = 0,
    *,
    test_fraction: float = 0.25,
    noise: float = 1.0,
    separation: float = 1.0,
) -> tuple[TensorDataset, TensorDataset]:
    """``n`` samples of class-dependent Gaussian blobs, split into train and test sets.

    Each class has a random mean image (smoothed, so convolutions see spatial structure);
    a sample is its class mean plus ``noise`` * N(0, 1). Labels are balanced, int64. With the
    defaults a tiny conv net or MLP fits it in a few epochs. Deterministic for a given seed.

    Example:
        >>> train, test = synthetic_classification(200, (1, 8, 8), num_classes=3, seed=1)
        >>> len(train), len(test), tuple(train[0][0].shape)
        (150, 50, (1, 8, 8))
    """
    shape = tuple(shape)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape must be a non-empty sequence of positive integers, got {shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    n_test = max(1, round(n * test_fraction))
    if n_test >= n:
        raise ValueError(f"n={n} is too small for test_fraction={test_fraction}")
    g = torch.Generator().manual_seed(int(seed))
    means = torch.randn((num_classes, *shape), generator=g)
    if len(shape) >= 2:
        # Blur the means over the last two (spatial) dims so neighbouring pixels correlate.
        flat = means.reshape(-1, 1, *shape[-2:])
        kernel = torch.ones(1, 1, 3, 3) / 9.0
        flat = torch.nn.functional.conv2d(flat, kernel, padding=1)
        means = flat.reshape(num_classes, *shape)
    # Rescale so the class means sit `separation` noise-standard-deviations apart per pixel.
    means = means / means.std() * separation
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    x = means[y] + noise * torch.randn((n, *shape), generator=g)
    n_train = n - n_test
    return (TensorDataset(x[:n_train].contiguous(), y[:n_train].contiguous()),
            TensorDataset(x[n_train:].contiguous(), y[n_train:].contiguous()))


# ---------------------------------------------------------------------- ops-window
def synthetic_kws(n: int = 600, seed: int = 0, *, test_fraction: float = 0.25
                  ) -> tuple[TensorDataset, TensorDataset]:
    """SYNTHETIC stand-in for MLPerf Tiny keyword spotting (Speech Commands is not available
    offline): labelled class blobs shaped like its 1x49x10 MFCC input, 12 classes. Not audio;
    accuracy on it says nothing about keyword spotting.

    Example:
        >>> train, test = synthetic_kws(48)
        >>> tuple(train[0][0].shape), len(test)
        ((1, 49, 10), 12)
    """
    return synthetic_classification(n, (1, 49, 10), 12, seed, test_fraction=test_fraction)


def synthetic_vww(n: int = 256, size: int = 96, seed: int = 0, *,
                  test_fraction: float = 0.25) -> tuple[TensorDataset, TensorDataset]:
    """SYNTHETIC stand-in for MLPerf Tiny visual wake words (the COCO-derived set is not
    available offline): labelled class blobs shaped like its 3 x size x size images, 2 classes
    (person / no person in name only).

    Example:
        >>> train, _ = synthetic_vww(16, size=32)
        >>> tuple(train[0][0].shape)
        (3, 32, 32)
    """
    return synthetic_classification(n, (3, size, size), 2, seed, test_fraction=test_fraction)
