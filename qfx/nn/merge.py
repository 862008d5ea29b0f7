"""Residual add: aligns the two binary points exactly (full-precision sum), then casts once."""

from __future__ import annotations

import torch

from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QAdd"]


class QAdd(QLayer):
    """``a + b`` for two fixed-point tensors of any formats; the output has its own format.

    Example:
        >>> add = QAdd()
        >>> add(torch.ones(2, 3), torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, *, act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.output_quantizer = cfg.act_quantizer(act_width or cfg.add_width)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.output_quantizer(self._prepare(a) + self._prepare(b))
