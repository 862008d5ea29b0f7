"""``add``: the exact sum of two edges of the same shape (any formats), then one cast.

attrs ``acc_type``: the ap_fixed result type of ``a + b`` (it holds every sum exactly)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from qfx.fixed.fixed_type import FixedType
from qfx.ir.ops.base import NodeCost, OpSpec, check_accumulator, register, where

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["Add"]


@register
class Add(OpSpec):
    name = "add"
    n_inputs = 2
    attrs = ("acc_type",)

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, y = ins
        if tuple(x.shape) != tuple(y.shape):
            raise ValueError(f"{where(node)}: adds shapes {x.shape} and {y.shape}")
        return tuple(x.shape)

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int]:
        x_t, y_t = ins
        frac = max(x_t.frac_bits, y_t.frac_bits)
        sx, sy = frac - x_t.frac_bits, frac - y_t.frac_bits
        return ((x_t.raw_min << sx) + (y_t.raw_min << sy),
                (x_t.raw_max << sx) + (y_t.raw_max << sy), frac)

    def size_accumulator(self, node: Node, ins: Sequence[FixedType], where: str) -> FixedType:
        return FixedType.add(ins[0], ins[1])  # ap_fixed's own sum type: always exact

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        lo, hi, frac = self.accumulator_range(node, [e.type for e in ins])
        check_accumulator(node, node.attrs["acc_type"], lo, hi, frac)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return xs[0] + xs[1]

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        n = int(np.prod(out.shape))
        return NodeCost(node.name, node.op, additions=n,
                        adder_bits=n * node.attrs["acc_type"].width)
