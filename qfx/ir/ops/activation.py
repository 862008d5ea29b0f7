"""Element-wise activations: ``relu`` (max(x, 0), then the output cast) and ``hardtanh``
(clamp to [min_raw, max_raw] on ``clamp_type``'s grid, then the output cast); the exact
piecewise-linear ones: ``leaky_relu`` (a power-of-two slope 2**-shift: x's bits with the binary
point moved), ``hardsigmoid`` (clamp(x * c + 1/2, 0, 1), c the fixed-point constant
``scale_raw`` of ``scale_type``, e.g. 1/6 rounded to its declared format) and ``hardswish``
(x * hardsigmoid(x)); each computed exactly, then one output cast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from qfx.fixed.fixed_type import FixedType
from qfx.ir.ops.base import NodeCost, OpSpec, check_accumulator, exact_type, register, where

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["HardSigmoid", "HardSwish", "HardTanh", "LeakyReLU", "ReLU"]


@register
class ReLU(OpSpec):
    name = "relu"
    channelwise = True

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return torch.clamp(xs[0], min=0.0)

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op, comparisons=int(np.prod(out.shape)))


@register
class HardTanh(OpSpec):
    name = "hardtanh"
    channelwise = True
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


# ---------------------------------------------------------------------- exact piecewise-linear
@register
class LeakyReLU(OpSpec):
    """``x >= 0 ? x : x * 2**-shift``, then the output cast. The negative branch is exact:
    ``acc_type`` is the input's bits with the binary point moved by ``shift``
    (``FixedType(W, I - shift)``), a reinterpretation in hardware, never a rounding."""

    name = "leaky_relu"
    channelwise = True
    attrs = ("shift", "acc_type")

    @staticmethod
    def shifted_type(x_t: FixedType, shift: int) -> FixedType:
        """The exact format of ``x * 2**-shift`` for x of ``x_t``."""
        return FixedType(x_t.width, x_t.int_bits - shift, x_t.signed)

    def size_accumulator(self, node: Node, ins: Sequence[FixedType], where: str) -> FixedType:
        return self.shifted_type(ins[0], int(node.attrs["shift"]))

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, x_t = node.attrs, ins[0].type
        if not isinstance(a["shift"], int) or isinstance(a["shift"], bool):
            raise ValueError(f"{where(node)}: shift must be an integer (slope 2**-shift)")
        if a["acc_type"] != self.shifted_type(x_t, int(a["shift"])):
            raise ValueError(f"{where(node)}: acc_type must be the input {x_t.cpp()} with the "
                             f"binary point moved by shift={a['shift']}, got "
                             f"{a['acc_type'].cpp()}")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        x = xs[0]
        neg = torch.ldexp(x, torch.tensor(-float(node.attrs["shift"]), dtype=torch.float64,
                                          device=device))
        return torch.where(x >= 0, x, neg)

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op, comparisons=int(np.prod(out.shape)))


class _HardGate(OpSpec):
    """Shared by ``hardsigmoid`` / ``hardswish``: the gate ``g = clamp(x * c + 1/2, 0, 1)``
    with ``c = scale_raw * 2**-F_c`` (``scale_type``), computed exactly on ``gate_type``
    (at least F_x + F_c fractional bits and one more for the 1/2; holds every x * c + 1/2
    and the bounds 0 and 1)."""

    attrs = ("scale_raw", "scale_type", "gate_type", "acc_type")
    channelwise = True

    @staticmethod
    def gate_frac(x_t: FixedType, c_t: FixedType) -> int:
        return max(x_t.frac_bits + c_t.frac_bits, 1)

    @classmethod
    def gate_range(cls, x_t: FixedType, c_t: FixedType, c_raw: int) -> tuple[int, int, int]:
        """Raw [lo, hi] of x * c + 1/2 (and 0, 1) at the gate's fractional bits."""
        frac = cls.gate_frac(x_t, c_t)
        s = frac - x_t.frac_bits - c_t.frac_bits
        half, one = 1 << (frac - 1), 1 << frac
        lo, hi = sorted((x_t.raw_min * c_raw << s, x_t.raw_max * c_raw << s))
        return min(lo + half, 0), max(hi + half, one), frac

    @classmethod
    def size_gate(cls, x_t: FixedType, c_t: FixedType, c_raw: int, where: str) -> FixedType:
        """The exact gate format (what the frontends store in ``attrs['gate_type']``)."""
        return exact_type(*cls.gate_range(x_t, c_t, c_raw), where)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, at, x_t = node.attrs, where(node), ins[0].type
        c_t, c_raw = a["scale_type"], a["scale_raw"]
        if not isinstance(c_raw, int) or not c_t.raw_min <= c_raw <= c_t.raw_max:
            raise ValueError(f"{at}: scale_raw {c_raw!r} is not a raw value of {c_t.cpp()}")
        lo, hi, frac = self.gate_range(x_t, c_t, c_raw)
        check_accumulator(node, a["gate_type"], lo, hi, frac)
        acc = self.accumulator_range(node, [x_t])
        if acc is not None:
            check_accumulator(node, a["acc_type"], *acc)
        elif a["acc_type"] != a["gate_type"]:
            raise ValueError(f"{at}: acc_type must be the gate type {a['gate_type'].cpp()}")

    def size_accumulator(self, node: Node, ins: Sequence[FixedType], where: str) -> FixedType:
        rng = self.accumulator_range(node, ins)
        if rng is None:
            return node.attrs["gate_type"]
        return exact_type(*rng, where)

    def gate(self, node: Node, x: torch.Tensor) -> torch.Tensor:
        c_t = node.attrs["scale_type"]
        c = float(np.ldexp(float(node.attrs["scale_raw"]), -c_t.frac_bits))
        return torch.clamp(x * c + 0.5, min=0.0, max=1.0)


@register
class HardSigmoid(_HardGate):
    """``y = cast(clamp(x * c + 1/2, 0, 1))`` (PyTorch's hardsigmoid with c = 1/6 rounded
    to ``scale_type``); ``acc_type`` is ``gate_type``."""

    name = "hardsigmoid"

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return self.gate(node, xs[0])

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        n = int(np.prod(out.shape))
        return NodeCost(node.name, node.op, multipliers=1, mult_ops=n, additions=n,
                        adder_bits=n * node.attrs["gate_type"].width, comparisons=2 * n)


@register
class HardSwish(_HardGate):
    """``y = cast(x * clamp(x * c + 1/2, 0, 1))`` (PyTorch's hardswish with c = 1/6 rounded
    to ``scale_type``); ``acc_type`` holds the exact product x * gate."""

    name = "hardswish"

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int]:
        x_t = ins[0]
        # the gate lies in [0, 1] (raw [0, one]): x * g lies between x_min, x_max and 0
        one = 1 << self.gate_frac(x_t, node.attrs["scale_type"])
        return (min(x_t.raw_min * one, 0), max(x_t.raw_max * one, 0),
                x_t.frac_bits + self.gate_frac(x_t, node.attrs["scale_type"]))

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return xs[0] * self.gate(node, xs[0])

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        n = int(np.prod(out.shape))
        return NodeCost(node.name, node.op, multipliers=2, mult_ops=2 * n, additions=n,
                        adder_bits=n * node.attrs["gate_type"].width, comparisons=2 * n)
