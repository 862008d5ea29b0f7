"""``dense`` and ``conv2d``: integer weights (optionally K-hot digits) and bias, one exact
accumulator, one cast.

dense: params ``weight`` [O, N] (``weight_type``), optional ``bias`` [O] (``bias_type``);
attrs ``acc_type``. conv2d: ``weight`` [O, C/groups, KH, KW]; attrs ``stride``, ``padding``,
``dilation``, ``groups`` (PyTorch's cross-correlation). The accumulator holds every partial sum
of ``bias + sum w * x`` over the input format's range, on the grid F_x + F_w (or the bias's
finer grid), so no order of additions can round or overflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import exact_conv2d, exact_linear
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
    pair,
    raw_in_type,
    register,
    where,
)
from qfx.ir.ops.shapes import conv2d_output_size

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["Conv1d", "Conv2d", "Dense"]


class _Weighted(OpSpec):
    params = ("weight",)
    optional_params = ("bias", "weight_digits")
    optional_attrs = ("bias_type", "weight_khot", "weight_shift")
    khot_keys = ("weight",)

    def check_params(self, node: Node) -> None:
        """``weight_shift`` (per-channel formats, optional): one shift 0..62 per output
        channel, every raw weight of channel o a multiple of 2**weight_shift[o]."""
        check_channel_shifts(node, "weight")

    def _frac(self, node: Node, x_t: FixedType) -> int:
        frac = x_t.frac_bits + node.attrs["weight_type"].frac_bits
        if "bias" in node.params:
            frac = max(frac, node.attrs["bias_type"].frac_bits)
        return frac

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int]:
        x_t, w_t = ins[0], node.attrs["weight_type"]
        frac = self._frac(node, x_t)
        add = None
        if "bias" in node.params:
            add = node.params["bias"].astype(object) * (1 << (frac - node.attrs["bias_type"]
                                                               .frac_bits))
        lo, hi = dot_rows(node.params["weight"], x_t, frac - x_t.frac_bits - w_t.frac_bits, add)
        return lo, hi, frac

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, p, at = node.attrs, node.params, where(node)
        x_t, w_t, acc_t = ins[0].type, a["weight_type"], a["acc_type"]
        raw_in_type(p["weight"], w_t, f"{at} weight")
        frac = x_t.frac_bits + w_t.frac_bits
        if "bias" in p:
            b_t = a.get("bias_type")
            if not isinstance(b_t, FixedType):
                raise ValueError(f"{at}: has a bias but no bias_type")
            raw_in_type(p["bias"], b_t, f"{at} bias")
            frac = max(frac, b_t.frac_bits)
            n_out = p["weight"].shape[0]
            if p["bias"].shape != (n_out,):
                raise ValueError(f"{at}: bias shape {p['bias'].shape} != ({n_out},)")
        if acc_t.frac_bits < frac:
            raise ValueError(f"{at}: accumulator {acc_t.cpp()} has fewer fractional bits "
                             f"than its products/bias need ({frac})")
        check_khot_width(node, "weight", w_t, at)
        lo, hi, frac = self.accumulator_range(node, [x_t])
        check_accumulator(node, acc_t, lo, hi, frac)

    def _bias(self, node: Node, device: torch.device) -> torch.Tensor | None:
        if "bias" not in node.params:
            return None
        return const_values(node.attrs["bias_type"], node.params["bias"], device)

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        c = NodeCost(node.name, node.op)
        w = node.params["weight"]
        rows, per_row = w.shape[0], w[0].size
        pos = self.positions(out)
        mult, shift = constant_terms(node, "weight", binary_input)
        summands = mult.reshape(rows, -1).sum(1) + shift.reshape(rows, -1).sum(1)
        if "bias" in node.params:
            summands = summands + (node.params["bias"] != 0)
        c.macs = rows * per_row * pos
        c.multipliers = int(mult.sum())
        c.mult_ops = c.multipliers * pos
        c.shift_add_terms = int(shift.sum()) * pos
        c.additions = int(np.maximum(summands - 1, 0).sum()) * pos
        c.adder_bits = c.additions * node.attrs["acc_type"].width
        return c

    def positions(self, out: Edge) -> int:
        """Output positions that reuse each weight (1 for dense)."""
        return 1

    # ------------------------------------------------------------------ channel pruning
    def _depthwise(self, node: Node) -> bool:
        """One input and one output channel per group (groups > 1)."""
        w, groups = node.params["weight"], int(node.attrs.get("groups", 1))
        return groups > 1 and w.shape[1] == 1 and w.shape[0] == groups

    def channel_ties(self, node: Node, ins: Sequence[Edge], out: Edge
                     ) -> list[list[tuple[int, int]]] | None:
        """Rows go alone (their input channels by :meth:`absorbs`); a depthwise convolution
        ties output channel c to input channel c; other grouped convolutions keep all."""
        rows = node.params["weight"].shape[0]
        if int(node.attrs.get("groups", 1)) == 1:
            return [[] for _ in range(rows)]
        return [[(0, c)] for c in range(rows)] if self._depthwise(node) else None

    def channel_sources(self, node: Node, ins: Sequence[Edge], out: Edge
                        ) -> list[list[tuple[int, int]]] | None:
        """The input channels a row has a nonzero weight on."""
        w = node.params["weight"]
        used = w.reshape(w.shape[0], w.shape[1], -1).any(axis=2)
        if self._depthwise(node):
            return [[(0, c)] if used[c, 0] else [] for c in range(w.shape[0])]
        if int(node.attrs.get("groups", 1)) != 1:
            return None
        return [[(0, int(c)) for c in np.flatnonzero(row)] for row in used]

    def absorbs(self, node: Node, ins: Sequence[Edge], i: int, c: int, const: int | None
                ) -> bool:
        """An input channel every weight on which is 0 goes; a constant one folds into the
        bias (a convolution's zero padding reads 0, not the constant, at the border: there
        only a constant 0 goes)."""
        if int(node.attrs.get("groups", 1)) != 1:
            return False
        if not node.params["weight"][:, c].any():
            return True
        if const is None:
            return False
        return const == 0 or not any(np.atleast_1d(node.attrs.get("padding", 0)))

    def drop_channels(self, node: Node, ins: Sequence[Edge],
                      drop_in: Sequence[Mapping[int, int | None]], drop_out: Sequence[int]
                      ) -> None:
        """Drop rows (weights, digits, bias); fold each dropped input channel's constant into
        the bias exactly (on the grid max(F_x + F_w, F_bias), widened to hold it)."""
        p, a = node.params, node.attrs
        w = p["weight"]
        rows = kept_indices(w.shape[0], drop_out)
        if self._depthwise(node):
            a["groups"] = len(rows)
            cols = np.arange(w.shape[1])
        else:
            self._fold_constants(node, ins[0].type, drop_in[0])
            cols = kept_indices(w.shape[1], drop_in[0])
        for key in ("weight", "weight_digits"):
            if key in p:
                p[key] = p[key][rows][:, cols]
        if "weight_shift" in a:
            a["weight_shift"] = [a["weight_shift"][int(o)] for o in rows]
        if "bias" in p:
            p["bias"] = p["bias"][rows]

    def _fold_constants(self, node: Node, x_t: FixedType, drop: Mapping[int, int | None]
                        ) -> None:
        p, a = node.params, node.attrs
        w = p["weight"]
        consts = {c: v for c, v in drop.items() if v and w[:, c].any()}
        if not consts:
            return
        frac = self._frac(node, x_t)
        total = np.zeros(w.shape[0], dtype=object)
        for c, v in consts.items():
            total += w[:, c].reshape(w.shape[0], -1).astype(object).sum(axis=1) * int(v)
        total *= 1 << (frac - x_t.frac_bits - a["weight_type"].frac_bits)
        if "bias" in p:
            total += p["bias"].astype(object) * (1 << (frac - a["bias_type"].frac_bits))
        p["bias"] = np.array([int(v) for v in total], dtype=np.int64)
        a["bias_type"] = FixedType.for_raw_range(int(p["bias"].min()), int(p["bias"].max()),
                                                 frac)


@register
class Dense(_Weighted):
    name = "dense"
    attrs = ("weight_type", "acc_type")

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, w = ins[0], node.params["weight"]
        if len(x.shape) != 1 or w.ndim != 2 or w.shape[1] != x.shape[0]:
            raise ValueError(f"{where(node)}: needs a 1-D input and weight (out, in); got "
                             f"input {x.shape}, weight {w.shape}")
        return (w.shape[0],)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        w = const_values(node.attrs["weight_type"], node.params["weight"], device)
        return exact_linear(xs[0], w, self._bias(node, device))


@register
class Conv2d(_Weighted):
    name = "conv2d"
    attrs = ("weight_type", "acc_type", "stride", "padding", "dilation", "groups")
    window = True

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        return conv_shape(node, ins[0].shape, node.params["weight"])

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        a = node.attrs
        w = const_values(a["weight_type"], node.params["weight"], device)
        return exact_conv2d(xs[0], w, self._bias(node, device), pair(a["stride"]),
                            pair(a["padding"]), pair(a["dilation"]), int(a["groups"]))

    def positions(self, out: Edge) -> int:
        return int(np.prod(out.shape[1:]))


def conv_shape(node: Node, x_shape: tuple[int, ...], w: np.ndarray) -> tuple[int, ...]:
    """Output shape of a (binary) 2-D convolution, with the structural checks."""
    a, at = node.attrs, where(node)
    groups = int(a["groups"])
    if len(x_shape) != 3 or w.ndim != 4:
        raise ValueError(f"{at}: needs a (C, H, W) input and a 4-D weight")
    cin, h, wd = x_shape
    cout, cin_g, kh, kw = w.shape
    if groups < 1 or cin % groups or cout % groups or cin_g * groups != cin:
        raise ValueError(f"{at}: groups={groups} does not fit {cin} input and "
                         f"{cout} output channels with weight {w.shape}")
    (sh, sw), (ph, pw), (dh, dw) = pair(a["stride"]), pair(a["padding"]), pair(a["dilation"])
    return (cout, conv2d_output_size(h, kernel=kh, stride=sh, padding=ph, dilation=dh),
            conv2d_output_size(wd, kernel=kw, stride=sw, padding=pw, dilation=dw))


# ---------------------------------------------------------------------- ops-window: conv1d
@register
class Conv1d(_Weighted):
    """PyTorch's ``conv1d`` on a ``(C, L)`` input: ``weight`` [O, C/groups, K]; attrs
    ``stride``, ``padding``, ``dilation`` (ints), ``groups`` (depthwise: groups == C). Exactly a
    ``conv2d`` over a height-1 input (the executor and the HLS layer compute it as one)."""

    name = "conv1d"
    attrs = ("weight_type", "acc_type", "stride", "padding", "dilation", "groups")
    window = True

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        x, w = ins[0].shape, node.params["weight"]
        if len(x) != 2 or w.ndim != 3:
            raise ValueError(f"{where(node)}: needs a (C, L) input and a 3-D weight "
                             f"(out, in/groups, k); got input {x}, weight {w.shape}")
        for k in ("stride", "padding", "dilation"):
            if isinstance(node.attrs[k], (list, tuple)):
                raise ValueError(f"{where(node)}: {k} must be one integer")
        c, _, length = conv_shape(_as_2d(node), (x[0], 1, x[1]), w[:, :, None, :])
        return (c, length)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        a = node.attrs
        w = const_values(a["weight_type"], node.params["weight"], device)
        y = exact_conv2d(xs[0].unsqueeze(2), w.unsqueeze(2), self._bias(node, device),
                         (1, int(a["stride"])), (0, int(a["padding"])), (1, int(a["dilation"])),
                         int(a["groups"]))
        return y.squeeze(2)

    def positions(self, out: Edge) -> int:
        return int(out.shape[1])


def _as_2d(node: Node) -> Node:
    """A conv1d node's attributes as a height-1 conv2d's (for the shared shape rule)."""
    a = dict(node.attrs)
    a.update(stride=[1, int(a["stride"])], padding=[0, int(a["padding"])],
             dilation=[1, int(a["dilation"])])
    return replace(node, attrs=a)
