"""Element-wise activations: ``relu`` (max(x, 0), then the output cast) and ``hardtanh``
(clamp to [min_raw, max_raw] on ``clamp_type``'s grid, then the output cast)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from qfx.ir.ops.base import NodeCost, OpSpec, register, where

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["HardTanh", "ReLU"]


@register
class ReLU(OpSpec):
    name = "relu"

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return torch.clamp(xs[0], min=0.0)

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op, comparisons=int(np.prod(out.shape)))


@register
class HardTanh(OpSpec):
    name = "hardtanh"
    attrs = ("min_raw", "max_raw", "clamp_type")

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, x_t = node.attrs, ins[0].type
        c_t = a["clamp_type"]
        lo_r, hi_r = int(a["min_raw"]), int(a["max_raw"])
        if not (c_t.contains(x_t) and c_t.raw_min <= lo_r <= hi_r <= c_t.raw_max):
            raise ValueError(f"{where(node)}: clamp type {c_t.cpp()} must hold the input "
                             f"{x_t.cpp()} and the bounds [{lo_r}, {hi_r}]")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        a = node.attrs
        t = a["clamp_type"]
        return torch.clamp(xs[0], min=float(np.ldexp(a["min_raw"], -t.frac_bits)),
                           max=float(np.ldexp(a["max_raw"], -t.frac_bits)))

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op, comparisons=2 * int(np.prod(out.shape)))
