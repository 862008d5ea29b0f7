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

__all__ = ["Add", "Concat", "Mul"]


@register
class Add(OpSpec):
    name = "add"
    channelwise = True
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


# ---------------------------------------------------------------------- concat, mul (ops-graph)
def _align_range(ins: Sequence[FixedType]) -> tuple[int, int, int]:
    """The raw range of every value of ``ins`` on their common (finest) grid."""
    frac = max(t.frac_bits for t in ins)
    return (min(t.raw_min << (frac - t.frac_bits) for t in ins),
            max(t.raw_max << (frac - t.frac_bits) for t in ins), frac)


@register
class Concat(OpSpec):
    """``concat``: the inputs stacked along the channel axis (axis 0 of the edge shapes, dim 1
    of a batch), every value aligned exactly onto ``acc_type`` (the finest grid, the union of
    the ranges: no loss), then one cast to the output type.

    attrs ``acc_type``: a format that holds every value of both inputs exactly. Every other
    dimension must agree (a U-Net's skip and upsampled tensors must have the same H, W).

    Example:
        >>> from qfx.ir.ops import spec
        >>> spec("concat").size_accumulator(None, [FixedType(8, 3), FixedType(6, 4, False)],
        ...                                 "cat").cpp()
        'ap_fixed<10,5>'
    """

    name = "concat"
    n_inputs = 2
    attrs = ("acc_type",)

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, y = ins
        if len(x.shape) != len(y.shape) or tuple(x.shape[1:]) != tuple(y.shape[1:]):
            raise ValueError(f"{where(node)}: concatenates shapes {tuple(x.shape)} and "
                             f"{tuple(y.shape)} on the channel axis; every other dimension "
                             "must be equal")
        return (x.shape[0] + y.shape[0], *x.shape[1:])

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int]:
        return _align_range(ins)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        acc_t = node.attrs["acc_type"]
        for e in ins:
            if not acc_t.contains(e.type):
                raise ValueError(f"{where(node)}: acc_type {acc_t.cpp()} cannot hold every "
                                 f"value of input {e.name!r} ({e.type.cpp()}) exactly")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return torch.cat(xs, dim=1)

    def channel_ties(self, node: Node, ins: Sequence[Edge], out: Edge
                     ) -> list[list[tuple[int, int]]]:
        """Output channel j is channel j of the first input, or j - C_0 of the second."""
        c0 = ins[0].shape[0]
        return [[(0, j)] if j < c0 else [(1, j - c0)] for j in range(out.shape[0])]

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op)  # wiring and the cast only


def _gate_broadcast(node: Node, x: Sequence[int], g: Sequence[int]) -> bool:
    """True when ``g`` is a per-channel gate ([C] or [C, 1, 1]) of a [C, H, W] ``x``; False
    when the shapes are equal; else a one-line error naming the node."""
    x, g = tuple(x), tuple(g)
    if x == g:
        return False
    if len(x) == 3 and g in ((x[0],), (x[0], 1, 1)):
        return True
    raise ValueError(f"{where(node)}: multiplies shapes {x} and {g}; the second input must have "
                     "the first's shape or be a per-channel gate ([C] or [C, 1, 1] over [C, H, W])")


@register
class Mul(OpSpec):
    """``mul``: the exact element-wise product of two edges, ``acc_type`` = ap_fixed's product
    type (W1 + W2, I1 + I2), then one cast. The second input may be a per-channel gate ([C] or
    [C, 1, 1]) broadcast over a [C, H, W] first input (squeeze-excite).

    Example:
        >>> from qfx.ir.ops import spec
        >>> spec("mul").size_accumulator(None, [FixedType(8, 3), FixedType(6, 0, False)],
        ...                              "se").cpp()
        'ap_fixed<14,3>'
    """

    name = "mul"
    n_inputs = 2
    attrs = ("acc_type",)

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        _gate_broadcast(node, ins[0].shape, ins[1].shape)
        return tuple(ins[0].shape)

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int]:
        x_t, y_t = ins
        ends = [a * b for a in (x_t.raw_min, x_t.raw_max) for b in (y_t.raw_min, y_t.raw_max)]
        return min(ends), max(ends), x_t.frac_bits + y_t.frac_bits

    def size_accumulator(self, node: Node, ins: Sequence[FixedType], where: str) -> FixedType:
        return FixedType.mul(ins[0], ins[1])  # ap_fixed's own product type: always exact

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        lo, hi, frac = self.accumulator_range(node, [e.type for e in ins])
        check_accumulator(node, node.attrs["acc_type"], lo, hi, frac)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        x, g = xs
        if tuple(g.shape) != tuple(x.shape):
            g = g.reshape(g.shape[0], -1, *([1] * (x.dim() - 2)))
        return x * g

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        n = int(np.prod(out.shape))
        return NodeCost(node.name, node.op, multipliers=n, mult_ops=n)
