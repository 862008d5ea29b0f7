"""Exact semantics of the K-hot digits and the binarized-network ops.

Notation: a tensor's raw integer ``a`` has value ``a * 2**-F`` with F the frac bits of its
FixedType; shapes below omit the batch dimension; "channel" is the first axis of an edge's
shape (C of (C, H, W), F of a flat (F,) edge). A *binary* edge (output of ``threshold`` or
``thermometer``, or ``maxpool2d``/``flatten`` of a binary edge) has type ap_fixed<2,2> and
only the values -1 and +1; hardware may carry it as one bit: bit 1 <-> +1, bit 0 <-> -1.

K-hot constants (optional params of dense, conv2d, batchnorm, binary_dense, binary_conv2d)
    ``weight_digits`` (with ``attrs["weight_khot"] = K``) / ``scale_digits`` (with
    ``attrs["scale_khot"] = K``): int64 ``[*weight.shape, K, 2]`` / ``[C, K, 2]``. Entry
    ``[..., j, :] = (sign_j, shift_j)`` with sign in {-1, 0, +1}, shift >= 0, and
    ``raw == sum_j sign_j * 2**shift_j`` exactly (raw on the weight_type / scale_type grid).
    Used digits come first, most significant first, no two at adjacent shifts (canonical
    signed digits: the count is minimal); unused slots are (0, 0). So
    ``x * w == sum_j sign_j * (x << shift_j)`` on the product grid F_x + F_w: K shifts and
    at most K - 1 adds, no multiplier. The values in ``weight`` / ``scale`` are unchanged.

binary_dense: params ``weight`` int64 [O, N] in {-1, +1}; attrs ``fan_in`` = N,
    ``acc_type``; optional ``scale`` int64 [O] (attrs ``scale_type``) and, when K-hot,
    ``scale_digits`` / ``scale_khot``. Input: binary edge (N,). With bits xb, wb (1 <-> +1):
        dot_o = sum_i x_i * w_oi = 2 * popcount(XNOR(xb, wb_o)) - N      (an integer)
    Without ``scale``: the output is dot_o itself; acc_type == the output type,
    ap_fixed<B,B> holding [-N, N] (no cast). With ``scale``: acc_o = scale_o * dot_o
    exactly (acc_type, frac bits of scale_type), then cast to the output type with its modes.

binary_conv2d: params ``weight`` int64 [O, C/groups, KH, KW] in {-1, +1}; attrs
    ``stride``, ``padding``, ``dilation``, ``groups``, ``pad_value`` = -1, ``fan_in`` =
    C/groups*KH*KW, ``acc_type``; optional ``scale`` as for binary_dense. Input: binary edge
    (C, H, W), padded with **-1** (bit 0) on every side by ``padding``; then the plain
    cross-correlation of torch.nn.functional.conv2d (padding 0) on the padded input:
    every output is dot = 2 * popcount(XNOR(window bits, weight bits)) - fan_in, the same
    fan_in at every position (padded taps count as -1). Output as for binary_dense.

threshold: params ``threshold`` int64 [C] (raw on ``threshold_type``, whose frac bits equal
    the input's), ``direction`` int64 [C] in {+1, -1}. Input: any edge (C, ...), raw a.
        out = +1 if a >= T_c else -1      (direction_c = +1)
        out = +1 if a <= T_c else -1      (direction_c = -1: BatchNorm scale < 0)
    Output: binary edge of the input's shape. A folded BatchNorm + sign is exactly this
    (T_c may lie one step outside the input range: a constant channel). When the input is
    a binary_dense/binary_conv2d output without scale (a = 2p - N, p the popcount):
    a >= T <=> p >= ceil((T + N) / 2) and a <= T <=> p <= floor((T + N) / 2).

thermometer: params ``thresholds`` int64 [L] non-decreasing (raw on ``threshold_type``, frac
    bits equal to the input's); attrs ``levels`` = L. Input: edge (C, ...) with raw x.
        out[c * L + k, ...] = +1 if x[c, ...] >= thresholds[k] else -1
    Output: binary edge (C * L, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import exact_conv2d, exact_linear
from qfx.ir.ops.base import (
    NodeCost,
    OpSpec,
    check_accumulator,
    check_binary_edge,
    check_khot_width,
    const_values,
    constant_terms,
    pair,
    raw_in_type,
    register,
    where,
)
from qfx.ir.ops.linear import conv_shape

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["BINARY_OPS_DOC", "BinaryConv2d", "BinaryDense", "Threshold", "Thermometer",
           "popcount_tree_bits"]

#: The contract of the K-hot digits and of the binarized ops (this module's docstring).
BINARY_OPS_DOC = __doc__


def popcount_tree_bits(n: int) -> int:
    """Adder bits of a balanced tree summing n single bits (each sum as wide as its count).

    Example:
        >>> popcount_tree_bits(4)  # two 2-bit sums, one 3-bit sum
        7
    """
    counts, bits = [1] * n, 0
    while len(counts) > 1:
        paired = [a + b for a, b in zip(counts[::2], counts[1::2], strict=False)]
        bits += sum(c.bit_length() for c in paired)
        counts = paired + (counts[-1:] if len(counts) % 2 else [])
    return bits


class _BinaryLayer(OpSpec):
    """binary_dense / binary_conv2d: XNOR-popcount on {-1, +1} inputs and weights."""

    params = ("weight",)
    optional_params = ("scale", "scale_digits")
    optional_attrs = ("scale_type", "scale_khot")
    khot_keys = ("scale",)

    def check_params(self, node: Node) -> None:
        w = node.params["weight"]
        if not np.isin(w, (-1, 1)).all():
            raise ValueError(f"node {node.name!r} ({node.op}): weights must be -1 or +1")
        if int(node.attrs["fan_in"]) != int(np.prod(w.shape[1:])):
            raise ValueError(f"node {node.name!r} ({node.op}): fan_in "
                             f"{node.attrs['fan_in']} != {int(np.prod(w.shape[1:]))}")

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int]:
        n = int(node.attrs["fan_in"])
        if "scale" not in node.params:
            return -n, n, 0
        s = node.params["scale"]
        bound = int(np.abs(s).max()) * n if s.size else 0  # acc = scale * dot, |dot| <= n
        return -bound, bound, node.attrs["scale_type"].frac_bits

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, p, at = node.attrs, node.params, where(node)
        check_binary_edge(at, ins[0].type, "input")
        if "scale" in p:
            s_t = a.get("scale_type")
            if not isinstance(s_t, FixedType) or p["scale"].shape != (p["weight"].shape[0],):
                raise ValueError(f"{at}: needs one scale per output channel and a scale_type")
            raw_in_type(p["scale"], s_t, f"{at} scale")
            check_khot_width(node, "scale", s_t, at)
        lo, hi, frac = self.accumulator_range(node, [ins[0].type])
        check_accumulator(node, a["acc_type"], lo, hi, frac)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        x = xs[0]
        if bool(((x != 1) & (x != -1)).any()):
            raise ValueError(f"node {node.name!r} ({node.op}) got inputs other than -1/+1")
        xb = (x > 0).to(torch.float64)
        wb = torch.from_numpy(node.params["weight"] > 0).to(device, torch.float64)
        pop, shape = self.popcount(node, xb, wb)
        dot = 2 * pop - int(node.attrs["fan_in"])
        if "scale" in node.params:
            return dot * const_values(node.attrs["scale_type"], node.params["scale"],
                                      device).view(shape)
        return dot

    def popcount(self, node: Node, xb: torch.Tensor, wb: torch.Tensor
                 ) -> tuple[torch.Tensor, tuple[int, ...]]:
        """popcount(XNOR(x bits, w bits)) per output, and the scale's broadcast shape."""
        raise NotImplementedError

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        c = NodeCost(node.name, node.op)
        a = node.attrs
        out_elems = int(np.prod(out.shape))
        n = int(a["fan_in"])
        per_channel = out_elems // node.params["weight"].shape[0]
        c.macs = c.xnor_bits = out_elems * n
        c.additions = out_elems * n  # popcount tree (n - 1) + the 2p - n correction
        c.adder_bits = out_elems * (popcount_tree_bits(n) + a["acc_type"].width)
        if "scale" in node.params:
            mult, shift = constant_terms(node, "scale")
            c.multipliers = int(mult.sum())
            c.mult_ops = c.multipliers * per_channel
            c.shift_add_terms = int(shift.sum()) * per_channel
            extra = int(np.maximum(shift - 1, 0).sum()) * per_channel
            c.additions += extra
            c.adder_bits += extra * a["acc_type"].width
        return c


@register
class BinaryDense(_BinaryLayer):
    name = "binary_dense"
    attrs = ("acc_type", "fan_in")

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, w, n = ins[0], node.params["weight"], int(node.attrs["fan_in"])
        if len(x.shape) != 1 or w.ndim != 2 or w.shape[1] != x.shape[0] or n != x.shape[0]:
            raise ValueError(f"{where(node)}: needs a 1-D input and weight (out, in); got "
                             f"input {x.shape}, weight {w.shape}")
        return (w.shape[0],)

    def popcount(self, node: Node, xb: torch.Tensor, wb: torch.Tensor
                 ) -> tuple[torch.Tensor, tuple[int, ...]]:
        # popcount(XNOR) = matches of ones + matches of zeros
        return exact_linear(xb, wb, None) + exact_linear(1 - xb, 1 - wb, None), (1, -1)


@register
class BinaryConv2d(_BinaryLayer):
    name = "binary_conv2d"
    attrs = ("acc_type", "fan_in", "stride", "padding", "dilation", "groups", "pad_value")
    window = True

    def check_params(self, node: Node) -> None:
        super().check_params(node)
        if int(node.attrs["pad_value"]) != -1:
            raise ValueError(f"{where(node)}: pad_value must be -1, got "
                             f"{node.attrs['pad_value']}")

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        return conv_shape(node, ins[0].shape, node.params["weight"])

    def popcount(self, node: Node, xb: torch.Tensor, wb: torch.Tensor
                 ) -> tuple[torch.Tensor, tuple[int, ...]]:
        a = node.attrs
        ph, pw = pair(a["padding"])
        ones = F.pad(xb, (pw, pw, ph, ph), value=0.0)  # a padded -1 is a 0 bit
        zeros = F.pad(1 - xb, (pw, pw, ph, ph), value=1.0)
        args = (None, pair(a["stride"]), (0, 0), pair(a["dilation"]), int(a["groups"]))
        return exact_conv2d(ones, wb, *args) + exact_conv2d(zeros, 1 - wb, *args), (1, -1, 1, 1)


def _check_grid(node: Node, t_t: FixedType, x_t: FixedType) -> None:
    if t_t.frac_bits != x_t.frac_bits:
        raise ValueError(f"{where(node)}: threshold type {t_t.cpp()} is not on the input's grid "
                         f"({x_t.cpp()})")


@register
class Threshold(OpSpec):
    name = "threshold"
    params = ("threshold", "direction")
    attrs = ("threshold_type",)
    casts = False
    makes_binary = True

    def check_params(self, node: Node) -> None:
        if not np.isin(node.params["direction"], (-1, 1)).all():
            raise ValueError(f"node {node.name!r} (threshold): direction must be -1 or +1")

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, p = ins[0], node.params
        c = x.shape[0] if x.shape else 0
        if not x.shape or p["threshold"].shape != (c,) or p["direction"].shape != (c,):
            raise ValueError(f"{where(node)}: threshold/direction must have one value per "
                             f"channel ({c})")
        return tuple(x.shape)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        check_binary_edge(where(node), out.type, "output")
        t_t = node.attrs["threshold_type"]
        _check_grid(node, t_t, ins[0].type)
        raw_in_type(node.params["threshold"], t_t, f"{where(node)} threshold")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        x = xs[0]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        t = const_values(node.attrs["threshold_type"], node.params["threshold"],
                         device).view(shape)
        up = torch.from_numpy(node.params["direction"]).to(device).view(shape) > 0
        positive = torch.where(up, x >= t, x <= t)
        return torch.where(positive, 1.0, -1.0).to(torch.float64)

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op, comparisons=int(np.prod(out.shape)))


@register
class Thermometer(OpSpec):
    name = "thermometer"
    params = ("thresholds",)
    attrs = ("threshold_type", "levels")
    casts = False
    makes_binary = True

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, levels = ins[0], int(node.attrs["levels"])
        if not x.shape or node.params["thresholds"].shape != (levels,) or levels < 1:
            raise ValueError(f"{where(node)}: needs a (C, ...) input and {levels} thresholds")
        return (x.shape[0] * levels, *x.shape[1:])

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        check_binary_edge(where(node), out.type, "output")
        t_t = node.attrs["threshold_type"]
        _check_grid(node, t_t, ins[0].type)
        raw_in_type(node.params["thresholds"], t_t, f"{where(node)} thresholds")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        x = xs[0]
        t = const_values(node.attrs["threshold_type"], node.params["thresholds"], device)
        bits = x.unsqueeze(2) >= t.view((1, 1, -1) + (1,) * (x.dim() - 2))
        return torch.where(bits, 1.0, -1.0).to(torch.float64).flatten(1, 2)

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op, comparisons=int(np.prod(out.shape)))
