"""``batchnorm``: ``x * scale + shift`` per channel (channel = first axis), exact, one cast.

params ``scale`` [C] (``scale_type``; optional K-hot ``scale_digits`` / ``scale_khot``),
``shift`` [C] (``shift_type``); attrs ``acc_type`` holding every ``x * scale + shift`` over the
input format's range on the grid max(F_x + F_scale, F_shift); optional ``scale_shift`` (per-channel
formats, learned widths): one shift per channel, ``scale[c]`` a multiple of 2**scale_shift[c] (the
backends store the narrow mantissas ``scale >> scale_shift``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from qfx.fixed.fixed_type import FixedType
from qfx.ir.ops.base import (
    NodeCost,
    OpSpec,
    check_accumulator,
    check_channel_shifts,
    check_khot_width,
    const_values,
    constant_terms,
    dot_rows,
    kept_indices,
    raw_in_type,
    register,
    where,
)

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["BatchNorm"]


@register
class BatchNorm(OpSpec):
    name = "batchnorm"
    params = ("scale", "shift")
    optional_params = ("scale_digits",)
    attrs = ("scale_type", "shift_type", "acc_type")
    optional_attrs = ("scale_khot", "scale_shift")
    khot_keys = ("scale",)
    channelwise = True
    channel_params = ("scale", "shift", "scale_digits")

    def check_params(self, node: Node) -> None:
        """``scale_shift`` (optional): one shift 0..62 per channel, ``scale[c]`` a multiple of
        2**scale_shift[c]."""
        check_channel_shifts(node, "scale")

    def channel_sources(self, node: Node, ins: Sequence[Edge], out: Edge
                        ) -> list[list[tuple[int, int]]] | None:
        """Channel c reads input channel c, unless its scale is 0: then it is its shift
        wherever it is read (a learned scale pruned to width 0), a constant whatever the input,
        and the pruning pass may drop it and its input channel."""
        scale = node.params["scale"]
        return [[(0, c)] if scale[c] != 0 else [] for c in range(scale.shape[0])]

    def drop_channels(self, node: Node, ins: Sequence[Edge],
                      drop_in: Sequence[Mapping[int, int | None]], drop_out: Sequence[int]
                      ) -> None:
        """The kept channels' constants (and scale shifts)."""
        if "scale_shift" in node.attrs:
            keep = kept_indices(node.params["scale"].shape[0], drop_out)
            node.attrs["scale_shift"] = [node.attrs["scale_shift"][int(c)] for c in keep]
        super().drop_channels(node, ins, drop_in, drop_out)

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, p = ins[0], node.params
        c = x.shape[0] if x.shape else 0
        if not x.shape or p["scale"].shape != (c,) or p["shift"].shape != (c,):
            raise ValueError(f"{where(node)}: scale/shift must have one value per channel ({c})")
        return tuple(x.shape)

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int]:
        a, p, x_t = node.attrs, node.params, ins[0]
        s_t, h_t = a["scale_type"], a["shift_type"]
        frac = max(x_t.frac_bits + s_t.frac_bits, h_t.frac_bits)
        add = p["shift"].astype(object) * (1 << (frac - h_t.frac_bits))
        lo, hi = dot_rows(p["scale"].reshape(-1, 1), x_t, frac - x_t.frac_bits - s_t.frac_bits,
                          add)
        return lo, hi, frac

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, p, at = node.attrs, node.params, where(node)
        raw_in_type(p["scale"], a["scale_type"], f"{at} scale")
        raw_in_type(p["shift"], a["shift_type"], f"{at} shift")
        check_khot_width(node, "scale", a["scale_type"], at)
        lo, hi, frac = self.accumulator_range(node, [ins[0].type])
        check_accumulator(node, a["acc_type"], lo, hi, frac)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        a, x = node.attrs, xs[0]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = const_values(a["scale_type"], node.params["scale"], device).view(shape)
        shift = const_values(a["shift_type"], node.params["shift"], device).view(shape)
        return x * scale + shift

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        c = NodeCost(node.name, node.op)
        out_elems = int(np.prod(out.shape))
        per_channel = out_elems // node.params["scale"].size
        mult, shift = constant_terms(node, "scale")
        summands = mult.astype(np.int64) + shift + (node.params["shift"] != 0)
        c.macs = out_elems
        c.multipliers = int(mult.sum())
        c.mult_ops = c.multipliers * per_channel
        c.shift_add_terms = int(shift.sum()) * per_channel
        c.additions = int(np.maximum(summands - 1, 0).sum()) * per_channel
        c.adder_bits = c.additions * node.attrs["acc_type"].width
        return c
