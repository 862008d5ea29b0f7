"""Fixed-point activations: the output format is where the non-linearity's range lives."""

from __future__ import annotations

import torch

from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QReLU", "QHardTanh"]


class QReLU(QLayer):
    """ReLU with an unsigned fixed-point output; saturation at the format's max gives
    ReLU6-like clipping for free.

    Example:
        >>> QReLU().output_quantizer.signed
        False
    """

    def __init__(self, *, act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.output_quantizer = cfg.act_quantizer(act_width, signed=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_quantizer(torch.relu(self._prepare(x)))


class QHardTanh(QLayer):
    """Clamp to ``[min_val, max_val]`` (exact power-of-two fractions), then cast.

    Example:
        >>> QHardTanh(-1.0, 1.0).min_val
        -1.0
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, *,
                 act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        for v in (min_val, max_val):
            if not torch.isfinite(torch.tensor(v)) or v != float(torch.tensor(v).double()):
                raise ValueError(f"QHardTanh bounds must be finite numbers, got {v!r}")
        if min_val >= max_val:
            raise ValueError(f"QHardTanh needs min_val < max_val, got {min_val}, {max_val}")
        cfg = config or current_config()
        self.min_val, self.max_val = float(min_val), float(max_val)
        self.output_quantizer = cfg.act_quantizer(act_width, signed=min_val < 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_quantizer(torch.clamp(self._prepare(x), self.min_val, self.max_val))


