"""Nearest upsampling and constant padding: they move values without arithmetic, so the output
keeps the input's format (no quantizer, nothing to learn)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from qfx.nn.base import QLayer

__all__ = ["QPad", "QUpsample"]


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or int(value) < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class QUpsample(QLayer):
    """Nearest-neighbour upsampling by integer factors (``nn.Upsample(scale_factor=s)``,
    ``mode='nearest'``); the output keeps the input's format.

    Example:
        >>> QUpsample(2)(torch.ones(1, 3, 4, 5)).shape
        torch.Size([1, 3, 8, 10])
        >>> QUpsample(1.5)
        Traceback (most recent call last):
        ...
        ValueError: QUpsample scale_factor must be a positive integer, got 1.5
    """

    output_quantizer = None

    def __init__(self, scale_factor: int | tuple[int, int] = 2) -> None:
        super().__init__()
        sh, sw = _pair(scale_factor)
        self.scale = (_positive_int(sh, "QUpsample scale_factor"),
                      _positive_int(sw, "QUpsample scale_factor"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.scale
        return self._prepare(x).repeat_interleave(sh, dim=2).repeat_interleave(sw, dim=3)

    @property
    def output_type(self):
        raise ValueError("QUpsample keeps its input's format")


class QPad(QLayer):
    """Constant padding of the two spatial axes (``nn.ConstantPad2d`` / ``nn.ZeroPad2d``);
    ``padding`` is an int or ``(left, right, top, bottom)`` as in PyTorch. The output keeps the
    input's format, so ``value`` must be one of its values (``qfx.freeze`` checks).

    Example:
        >>> QPad((1, 0, 2, 0))(torch.ones(1, 3, 4, 4)).shape
        torch.Size([1, 3, 6, 5])
    """

    output_quantizer = None

    def __init__(self, padding: int | tuple[int, int, int, int], value: float = 0.0) -> None:
        super().__init__()
        p = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(p) != 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                              for v in p):
            raise ValueError(f"QPad padding must be an int or (left, right, top, bottom) of "
                             f"integers >= 0, got {padding!r}")
        self.padding: tuple[int, int, int, int] = p  # type: ignore[assignment]
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(self._prepare(x), self.padding, value=self.value)

    @property
    def output_type(self):
        raise ValueError("QPad keeps its input's format")
