"""Learnable SYNTHETIC data sets for fast tests and flows: classification (class-dependent
Gaussian blobs), anomaly detection (low-rank "machine sound" frames) and segmentation (shapes)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import TensorDataset

__all__ = ["synthetic_classification", "synthetic_kws", "synthetic_vww",
           "synthetic_machine_sound", "synthetic_shapes"]


def _check_split(n: int, test_fraction: float, seed: int, *, min_test: int = 2) -> int:
    """The held-out count of ``n`` samples, at least ``min_test`` (one-line ValueError naming
    a bad argument)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    n_test = max(min_test, round(n * test_fraction))
    if n_test >= n:
        raise ValueError(f"n={n} is too small for test_fraction={test_fraction}")
    return n_test


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
    n_test = _check_split(n, test_fraction, seed, min_test=1)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape must be a non-empty sequence of positive integers, got {shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
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


# ---------------------------------------------------------------------- flows12: other tasks
def synthetic_machine_sound(n: int = 1600, seed: int = 0, *, test_fraction: float = 0.25,
                            rank: int = 6, noise: float = 0.15, anomaly: float = 1.5
                            ) -> tuple[TensorDataset, TensorDataset]:
    """SYNTHETIC stand-in for MLPerf Tiny anomaly detection (ToyADMOS is not available
    offline): 640-dim "machine sound" feature frames (5 frames x 128 log-mel bins), not audio.

    A normal frame is a fixed mean spectrum plus a random mix of ``rank`` smooth spectral shapes
    (a low-rank structure) plus ``noise`` * N(0, 1); an anomalous frame is a normal one plus an
    off-structure component of amplitude ``anomaly`` (relative to one structure component): its
    own random smooth spectrum (a resonance the machine does not have) with a narrow-band tone 3
    bins wide at a random bin, in every frame. The training set holds only normal frames (label
    0): an autoencoder learns to rebuild the structure. The held-out set alternates normal (0)
    and anomalous (1) frames. Features are centred per feature and divided by one factor (the
    standard deviation of all normal training values).
    Deterministic for a given seed.

    Example:
        >>> train, test = synthetic_machine_sound(80)
        >>> tuple(train[0][0].shape), int(train.tensors[1].sum()), int(test.tensors[1].sum())
        ((640,), 0, 10)
    """
    n_test = _check_split(n, test_fraction, seed)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= 64:
        raise ValueError(f"rank must be an integer in [1, 64], got {rank!r}")
    g = torch.Generator().manual_seed(int(seed))
    frames, bins = 5, 128
    smooth = torch.ones(1, 1, 9) / 9.0

    def spectra(k: int) -> torch.Tensor:  # k smooth random spectra over the mel bins
        s = torch.nn.functional.conv1d(torch.randn(k, 1, bins + 8, generator=g), smooth)
        return s.reshape(k, bins) / s.std()

    mean = spectra(1).repeat(1, frames)  # the machine's steady spectrum
    # each structure component: a spectral shape with its own slow change over the 5 frames
    shapes, slopes = spectra(rank), torch.randn(rank, 1, generator=g) * 0.2
    ramp = torch.linspace(-1.0, 1.0, frames)
    basis = (shapes[:, None, :] * (1.0 + slopes[:, :, None] * ramp[None, :, None]))
    basis = basis.reshape(rank, frames * bins)
    z = torch.randn(n, rank, generator=g)
    x = mean + z @ basis + noise * torch.randn(n, frames * bins, generator=g)
    y = torch.zeros(n, dtype=torch.int64)
    n_train = n - n_test
    anomalous = torch.arange(n_train + 1, n, 2)  # every other held-out frame
    y[anomalous] = 1
    where = torch.randint(1, bins - 1, (len(anomalous),), generator=g)
    line = spectra(len(anomalous))
    for d in (-1, 0, 1):
        line[torch.arange(len(anomalous)), where + d] += 2.0
    x[anomalous] += anomaly * line.repeat(1, frames)
    mu, sd = x[:n_train].mean(0), x[:n_train].std()
    x = (x - mu) / sd
    return (TensorDataset(x[:n_train].contiguous(), y[:n_train].contiguous()),
            TensorDataset(x[n_train:].contiguous(), y[n_train:].contiguous()))


def synthetic_shapes(n: int = 600, size: int = 16, seed: int = 0, *,
                     test_fraction: float = 0.25, noise: float = 0.3
                     ) -> tuple[TensorDataset, TensorDataset]:
    """SYNTHETIC segmentation set: 1 x ``size`` x ``size`` images of one to three random
    rectangles and discs (brighter by a random contrast in [0.8, 1.6]) on a smooth random
    background plus ``noise`` * N(0, 1); the label map (``size`` x ``size``, int64) is 1 on
    shape pixels, 0 elsewhere. Deterministic for a given seed.

    Example:
        >>> train, test = synthetic_shapes(40)
        >>> tuple(train[0][0].shape), tuple(train[0][1].shape), len(test)
        ((1, 16, 16), (16, 16), 10)
    """
    n_test = _check_split(n, test_fraction, seed)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    g = torch.Generator().manual_seed(int(seed))
    rows = torch.arange(size).reshape(size, 1).float()
    cols = torch.arange(size).reshape(1, size).float()
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    images = torch.zeros(n, size, size)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cy, cx = (torch.rand(2, generator=g) * size).tolist()
            r = 1.5 + float(torch.rand(1, generator=g)) * size / 5
            if float(torch.rand(1, generator=g)) < 0.5:  # a disc
                shape = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
            else:  # a rectangle of half-sides r and a random aspect
                h = r * (0.5 + float(torch.rand(1, generator=g)))
                shape = ((rows - cy).abs() <= h) & ((cols - cx).abs() <= r)
            masks[i] |= shape
            images[i] += shape * (0.8 + 0.8 * float(torch.rand(1, generator=g)))
    background = torch.nn.functional.avg_pool2d(
        torch.randn(n, 1, size + 6, size + 6, generator=g), 7, stride=1)
    x = images[:, None] + background * 1.5 + noise * torch.randn(n, 1, size, size, generator=g)
    y = masks.to(torch.int64)
    n_train = n - n_test
    return (TensorDataset(x[:n_train].contiguous(), y[:n_train].contiguous()),
            TensorDataset(x[n_train:].contiguous(), y[n_train:].contiguous()))
