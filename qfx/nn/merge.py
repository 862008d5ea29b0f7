"""Residual add: aligns the two binary points exactly (full-precision sum), then casts once."""

from __future__ import annotations

import torch

from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QAdd", "QConcat", "QMul"]


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


# ---------------------------------------------------------------------- concat, mul (ops-graph)
class QConcat(QLayer):
    """``torch.cat(xs, dim=1)`` of fixed-point tensors of any formats: every value is aligned
    exactly (no loss), then cast once to the layer's learned output format.

    Example:
        >>> cat = QConcat()
        >>> cat(torch.ones(2, 3, 4, 4), torch.ones(2, 5, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(self, *, act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.output_quantizer = cfg.act_quantizer(act_width or cfg.add_width)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if len(xs) < 2:
            raise ValueError(f"QConcat needs at least two tensors, got {len(xs)}")
        return self.output_quantizer(torch.cat([self._prepare(x) for x in xs], dim=1))


class QMul(QLayer):
    """``x * g``: the exact element-wise product of two fixed-point tensors (ap_fixed's product
    type), cast once to the layer's learned output format. ``g`` may have ``x``'s shape or be a
    per-channel gate (``[N, C]`` or ``[N, C, 1, 1]`` over ``[N, C, H, W]``: squeeze-excite).

    Example:
        >>> se = QMul()
        >>> se(torch.ones(2, 3, 4, 4), torch.ones(2, 3)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(self, *, act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.output_quantizer = cfg.act_quantizer(act_width)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x, g = self._prepare(x), self._prepare(g)
        if g.shape != x.shape and g.dim() == 2 and x.dim() == 4:
            g = g.reshape(*g.shape, 1, 1)
        return self.output_quantizer(x * g)
