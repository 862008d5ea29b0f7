"""``maxpool2d`` (no cast: the input's format, padding never wins) and ``avgpool2d`` (the exact
window sum on ``sum_type``, times 2**-shift or a fixed-point reciprocal ``recip``, then one
cast). Windows follow PyTorch (kernel, stride, padding, dilation, ceil_mode for max pooling;
kernel, stride and the optional padding and ceil_mode for average pooling, whose padded cells
add zeros to the sum). ``recip`` is one constant ``[1]``, or one per output position
``[OH, OW]`` (PyTorch's divisor depends on the position with padding, ``ceil_mode`` or
``count_include_pad=False``: the frontend stores each position's 1/divisor in ``recip_type``).
Global max pooling is ``maxpool2d`` with kernel = stride = the input's (H, W)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import exact_sum_pool2d
from qfx.ir.ops.base import (
    NodeCost,
    OpSpec,
    check_accumulator,
    const_values,
    exact_type,
    holds,
    is_pow2_or_zero,
    pair,
    raw_in_type,
    register,
    where,
)
from qfx.ir.ops.shapes import avgpool2d_output_size, maxpool2d_output_size

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["AvgPool2d", "MaxPool2d"]


def _chw(node: Node, x: Edge) -> tuple[int, int, int]:
    if len(x.shape) != 3:
        raise ValueError(f"{where(node)}: needs a (C, H, W) input")
    return x.shape  # type: ignore[return-value]


@register
class MaxPool2d(OpSpec):
    name = "maxpool2d"
    channelwise = True
    attrs = ("kernel", "stride", "padding", "dilation", "ceil_mode")
    same_format = True
    casts = False
    window = True
    keeps_binary = True

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        a = node.attrs
        c, h, w = _chw(node, ins[0])
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]), pair(a["dilation"]))
        ceil = bool(a["ceil_mode"])
        return (c, maxpool2d_output_size(h, kernel=kh, stride=sh, padding=ph, dilation=dh,
                                         ceil_mode=ceil),
                maxpool2d_output_size(w, kernel=kw, stride=sw, padding=pw, dilation=dw,
                                      ceil_mode=ceil))

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        x_t = ins[0].type
        if out.type != x_t:
            raise ValueError(f"{where(node)}: a max pool keeps its input type ({x_t.cpp()}), "
                             f"the output edge has {out.type.cpp()}")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        a = node.attrs
        return F.max_pool2d(xs[0], pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]),
                            pair(a["dilation"]), bool(a["ceil_mode"]))

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        area = int(np.prod(node.attrs["kernel"]))
        return NodeCost(node.name, node.op, comparisons=int(np.prod(out.shape)) * (area - 1))


@register
class AvgPool2d(OpSpec):
    name = "avgpool2d"
    channelwise = True
    attrs = ("kernel", "stride", "sum_type", "acc_type")
    optional_params = ("recip",)
    optional_attrs = ("shift", "recip_type", "padding", "ceil_mode")
    window = True

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        a = node.attrs
        c, h, w = _chw(node, ins[0])
        (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"])
        (ph, pw), ceil = pair(a.get("padding", 0)), bool(a.get("ceil_mode", False))
        if not (ph or pw or ceil):
            return (c, avgpool2d_output_size(h, kernel=kh, stride=sh),
                    avgpool2d_output_size(w, kernel=kw, stride=sw))
        if 2 * ph > kh or 2 * pw > kw:
            raise ValueError(f"{where(node)}: padding {[ph, pw]} exceeds half the kernel")
        return (c, maxpool2d_output_size(h, kernel=kh, stride=sh, padding=ph, dilation=1,
                                         ceil_mode=ceil),
                maxpool2d_output_size(w, kernel=kw, stride=sw, padding=pw, dilation=1,
                                      ceil_mode=ceil))

    @staticmethod
    def sum_type(x_t: FixedType, area: int) -> FixedType:
        """The exact window sum of ``area`` values of ``x_t``."""
        return x_t.sum_of(area)

    def size_accumulator(self, node: Node, ins: Sequence[FixedType], where: str) -> FixedType:
        """The sum's bits with the binary point moved by ``shift``, or sum x recip exactly."""
        sum_t = node.attrs["sum_type"]
        if "recip" in node.params:
            r_t, r = node.attrs["recip_type"], node.params["recip"]
            if r.size == 1:
                return FixedType.mul(sum_t, r_t)
            ends = [sum_t.raw_min * int(r.min()), sum_t.raw_max * int(r.max()),
                    sum_t.raw_min * int(r.max()), sum_t.raw_max * int(r.min())]
            return exact_type(min(ends), max(ends), sum_t.frac_bits + r_t.frac_bits, where)
        shift = int(node.attrs["shift"])
        return FixedType(sum_t.width, sum_t.int_bits - shift, sum_t.signed)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, p, at, x_t = node.attrs, node.params, where(node), ins[0].type
        (kh, kw) = pair(a["kernel"])
        sum_t, acc_t, area = a["sum_type"], a["acc_type"], kh * kw
        if sum_t.frac_bits != x_t.frac_bits or not holds(
                sum_t, x_t.raw_min * area, x_t.raw_max * area, x_t.frac_bits):
            raise ValueError(f"{at}: sum type {sum_t.cpp()} must hold the exact sum of "
                             f"{area} values of {x_t.cpp()} on the input's grid")
        if "recip" in p:
            r_t = a.get("recip_type")
            if not isinstance(r_t, FixedType) or p["recip"].shape not in ((1,),
                                                                           tuple(out.shape[1:])):
                raise ValueError(f"{at}: needs a recip_type and one recip value or one per "
                                 f"output position {list(out.shape[1:])}")
            raw_in_type(p["recip"], r_t, f"{at} recip")
            ends = [sum_t.raw_min * r for r in (int(p["recip"].min()), int(p["recip"].max()))]
            ends += [sum_t.raw_max * r for r in (int(p["recip"].min()), int(p["recip"].max()))]
            check_accumulator(node, acc_t, min(ends), max(ends), sum_t.frac_bits + r_t.frac_bits)
        else:
            shift = int(a.get("shift", -1))
            if shift < 0 or acc_t.width != sum_t.width or acc_t.signed != sum_t.signed or \
                    acc_t.frac_bits != sum_t.frac_bits + shift:
                raise ValueError(f"{at}: without a recip the accumulator must be the sum's "
                                 f"bits with the binary point moved by 'shift'")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        a = node.attrs
        (ph, pw), ceil = pair(a.get("padding", 0)), bool(a.get("ceil_mode", False))
        if ph or pw or ceil:  # the sum of the window's cells inside the input (exact)
            s = F.avg_pool2d(xs[0], pair(a["kernel"]), pair(a["stride"]), (ph, pw), ceil, True,
                             divisor_override=1)
        else:
            s = exact_sum_pool2d(xs[0], pair(a["kernel"]), pair(a["stride"]))
        if "recip" in node.params:
            r = const_values(a["recip_type"], node.params["recip"], device)
            return s * (float(r[0]) if r.numel() == 1 else r)
        return torch.ldexp(s, torch.tensor(-float(a["shift"]), dtype=torch.float64,
                                           device=device))

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        c = NodeCost(node.name, node.op)
        out_elems = int(np.prod(out.shape))
        area = int(np.prod(node.attrs["kernel"]))
        c.additions = out_elems * (area - 1)
        c.adder_bits = c.additions * node.attrs["sum_type"].width
        if "recip" in node.params and not is_pow2_or_zero(node.params["recip"]).all():
            c.multipliers, c.mult_ops = 1, out_elems
        return c
