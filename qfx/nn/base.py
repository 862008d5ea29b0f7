"""Shared behaviour of qfx layers: an output quantizer and the exact eval convention."""

from __future__ import annotations

import torch
from torch import nn

from qfx.fixed.quantizer import FixedQuantizer

__all__ = ["QLayer"]


class QLayer(nn.Module):
    """Base of every qfx layer: computes at full precision, then casts once to its output format.

    In eval mode inputs are fixed-point values held in float64 and every operation is exact
    (``qfx.freeze`` proves the accumulator bounds), so the layer's output equals the frozen
    executor's bit for bit.
    """

    output_quantizer: FixedQuantizer | None

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.training else x.double()

    @property
    def output_type(self):
        """The FixedType of this layer's output."""
        if self.output_quantizer is None:
            raise ValueError(f"{type(self).__name__} hands on its exact accumulator; its "
                                 "format is sized by qfx.freeze (see the frozen graph)")
        return self.output_quantizer.fixed_type
