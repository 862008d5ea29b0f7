"""Model boundary layers: the input quantizer that fixes the input format, and flatten."""

from __future__ import annotations

import torch

from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QInput", "QFlatten"]


class QInput(QLayer):
    """Quantise the model input; its format is what the hardware's input port carries.

    Example:
        >>> qin = QInput(width=8, signed=False)
        >>> qin(torch.rand(4, 3)).shape
        torch.Size([4, 3])
    """

    def __init__(self, width: int | None = None, signed: bool = True, *,
                 config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.output_quantizer = cfg.act_quantizer(width or cfg.input_width, signed=signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_quantizer(self._prepare(x))


class QFlatten(QLayer):
    """Flatten from ``start_dim`` (1 only: (N, ...) -> (N, features)); keeps the format.

    Example:
        >>> QFlatten()(torch.zeros(2, 3, 4)).shape
        torch.Size([2, 12])
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        if start_dim != 1 or end_dim != -1:
            raise ValueError("QFlatten supports only flattening everything after the batch "
                             f"dimension (start_dim=1, end_dim=-1), got {start_dim}, {end_dim}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)

    @property
    def output_type(self):
        raise ValueError("QFlatten keeps its input's format")
