"""Batch augmentations that run on whatever device the batch is on (no numpy, no PIL)."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["random_crop_flip", "AUGMENTATIONS", "Augmentation", "get_augmentation"]

# (batch, generator) -> augmented batch on the same device.
Augmentation = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4
) -> torch.Tensor:
    """Per-sample random crop (zero padding ``padding``) and horizontal flip of an NCHW batch.

    The random offsets are drawn on the CPU from ``generator`` (reproducible on any device)
    and applied on ``x``'s device.

    Example:
        >>> x = torch.rand(8, 3, 32, 32)
        >>> random_crop_flip(x, torch.Generator().manual_seed(0)).shape
        torch.Size([8, 3, 32, 32])
    """
    if x.dim() != 4:
        raise ValueError(f"random_crop_flip expects an NCHW batch, got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    xp = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (n, h)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indices around a slice put the indexed dims first: (n, h, w, c).
    out = xp[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return torch.where(flips[:, None, None, None], out.flip(3), out).contiguous()


def _flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    flips = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flips.reshape(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


AUGMENTATIONS: dict[str, Augmentation | None] = {
    "none": None, "crop_flip": random_crop_flip, "flip": _flip,
}


def get_augmentation(name: str | None) -> Augmentation | None:
    """The batch augmentation called ``name`` ("none", "crop_flip", "flip"), or None.

    Example:
        >>> get_augmentation("crop_flip") is random_crop_flip
        True
    """
    key = "none" if name is None else name
    if key not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; allowed: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[key]
