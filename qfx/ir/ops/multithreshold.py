"""``multithreshold`` (FINN's MultiThreshold): per channel, the number of thresholds the input
reaches, scaled and offset onto the output's raw integers. No multiplier, no cast.

params ``thresholds`` int64 [C, K], each row non-decreasing, raw on ``threshold_type`` (whose
frac bits equal the input's, so every comparison is an integer comparison of raw values);
``direction`` int64 [C] in {+1, -1}. attrs ``threshold_type``, ``out_scale`` and ``out_bias``
(Python ints) and ``out_frac`` (int): the levels are raw integers on the grid 2**-out_frac,
normally the output type's. Input: any edge (C, ...), raw a.

    count = #{k : a >= T[c, k]}      (direction_c = +1)
    count = #{k : a <= T[c, k]}      (direction_c = -1: a falling function, e.g. BN scale < 0)
    out = (count * out_scale + out_bias) * 2**-out_frac      (exactly; count in 0..K)

The output type must hold ``out_bias`` and ``K * out_scale + out_bias`` on that grid (hence
every level; with frac bits F_out >= out_frac, out_raw = level * 2**(F_out - out_frac)):
the op produces its output format directly, nothing rounds or saturates. A threshold may lie
one step outside the input's range (a level that is always / never reached). ``threshold``
(one level, binary output) is the K = 1, ``out_scale`` 2, ``out_bias`` -1 case on the binary
type; it stays its own op because binarized layers read its output as packed bits.

Example:
    >>> import numpy as np
    >>> from qfx.fixed.fixed_type import FixedType
    >>> from qfx.ir.graph import Node
    >>> from qfx.ir.ops import spec
    >>> n = Node("mt", "multithreshold", ["x"], "y",
    ...          {"threshold_type": FixedType(8, 8), "out_scale": 1, "out_bias": 0,
    ...           "out_frac": 0},
    ...          {"thresholds": np.array([[0, 2]]), "direction": np.array([1])})
    >>> spec("multithreshold").execute(n, [torch.tensor([[-1.0, 0.0, 1.0, 2.0]])],
    ...                                torch.device("cpu")).tolist()
    [[0.0, 1.0, 1.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from qfx.ir.ops.base import (
    NodeCost,
    OpSpec,
    const_values,
    holds,
    raw_in_type,
    register,
    where,
)
from qfx.ir.ops.binary import _check_grid, popcount_tree_bits

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["MultiThreshold", "level_range"]


def level_range(node: Node) -> tuple[int, int]:
    """The raw output range ``(lo, hi)`` over every count 0..K."""
    k = int(node.params["thresholds"].shape[1])
    ends = (int(node.attrs["out_bias"]), k * int(node.attrs["out_scale"]) + int(node.attrs[
        "out_bias"]))
    return min(ends), max(ends)


@register
class MultiThreshold(OpSpec):
    name = "multithreshold"
    params = ("thresholds", "direction")
    attrs = ("threshold_type", "out_scale", "out_bias", "out_frac")
    casts = False

    def check_params(self, node: Node) -> None:
        t, d, at = node.params["thresholds"], node.params["direction"], where(node)
        if t.ndim != 2 or t.shape[1] < 1 or d.shape != (t.shape[0],):
            raise ValueError(f"{at}: thresholds must be [C, K >= 1] and direction [C], got "
                             f"{t.shape} and {d.shape}")
        if not np.isin(d, (-1, 1)).all():
            raise ValueError(f"{at}: direction must be -1 or +1")
        if (np.diff(t, axis=1) < 0).any():
            raise ValueError(f"{at}: every row of thresholds must be non-decreasing")
        for key in ("out_scale", "out_bias", "out_frac"):
            if not isinstance(node.attrs[key], (int, np.integer)) or isinstance(
                    node.attrs[key], bool):
                raise ValueError(f"{at}: {key} must be an integer (output raw units)")
        if int(node.attrs["out_scale"]) == 0:
            raise ValueError(f"{at}: out_scale must not be 0")

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x = ins[0]
        if not x.shape or node.params["thresholds"].shape[0] != x.shape[0]:
            raise ValueError(f"{where(node)}: needs one row of thresholds per input channel "
                             f"({x.shape[0] if x.shape else 0})")
        return tuple(x.shape)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        t_t, at = node.attrs["threshold_type"], where(node)
        _check_grid(node, t_t, ins[0].type)
        raw_in_type(node.params["thresholds"], t_t, f"{at} thresholds")
        lo, hi = level_range(node)
        if not holds(out.type, lo, hi, int(node.attrs["out_frac"])):
            raise ValueError(f"{at}: output levels ({lo}..{hi} at {node.attrs['out_frac']} "
                             f"fractional bits) do not fit the output type {out.type.cpp()} "
                             "(the op does not cast)")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        x, p, a = xs[0], node.params, node.attrs
        c, k = p["thresholds"].shape
        t = const_values(a["threshold_type"], p["thresholds"], device)
        t = t.view((1, c) + (1,) * (x.dim() - 2) + (k,))
        up = torch.from_numpy(p["direction"] > 0).to(device).view((1, c) + (1,) * (x.dim() - 1))
        xu = x.unsqueeze(-1)
        count = torch.where(up, xu >= t, xu <= t).sum(-1).to(torch.float64)
        frac = -float(int(a["out_frac"]))
        return torch.ldexp(count * int(a["out_scale"]) + int(a["out_bias"]),
                           torch.tensor(frac, dtype=torch.float64, device=device))

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        elems = int(np.prod(out.shape))
        k = int(node.params["thresholds"].shape[1])
        extra = int(node.attrs["out_scale"]) != 1 or int(node.attrs["out_bias"]) != 0
        return NodeCost(node.name, node.op, comparisons=elems * k,
                        additions=elems * (k - 1 + int(extra)),
                        adder_bits=elems * (popcount_tree_bits(k) + int(extra) * out.type.width))

