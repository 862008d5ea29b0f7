"""Table activations: ``sigmoid``, ``tanh``, ``exp`` (one lookup table each) and ``softmax``
(an exp table, an exact sum, a reciprocal table and one product).

A table is indexed by the raw bits of its input read as an unsigned integer (all 2**W codes of
the input type, :func:`qfx.fixed.tables.table_codes`) and holds raw values of its output type,
filled once by :func:`qfx.fixed.tables.function_table` from the exact function. The IR stores the
table as a constant (``params``); the executor and the C++ read that same array, and ``verify``
recomputes it, so no backend can disagree with the function the IR names.

``sigmoid`` / ``tanh`` / ``exp``: params ``table`` [2**W_x]; attrs ``index_type`` (the input's
format: the table's domain) and ``table_type`` (the output edge's format: the table holds its
raw values, so the node has no cast of its own).

``softmax`` over the first (channel / feature) axis, per position of the other axes:

* ``m = max_c x_c`` (exact), ``d_c = m - x_c`` on ``diff_type`` = ap_ufixed<W_x, I_x>
  (raw d in [0, 2**W_x - 1] on the input's grid: exact);
* ``e_c = exp_table[raw d_c]`` = exp(-d_c) quantised onto ``exp_type``;
* ``S = sum_c e_c`` exactly on ``sum_type`` (the op's accumulator rule: C * the exp range);
* ``r = recip_table[raw S]`` = 1/S quantised onto ``recip_type`` (entry 0, never read when
  exp(0) is representable, holds ``recip_type``'s largest value);
* ``y_c = e_c * r`` exactly on ``acc_type``, then the one cast to the output type.

Why a reciprocal table and not a division: the reciprocal is one ROM read per position, shared
by its C products (a divider per output costs W cycles or W adders per bit in hardware, and HLS
dividers are what hls4ml also avoids); the table is the same exact machinery as the exp table,
so the quotient's only rounding steps are the two declared ones (``recip_type`` and the output
cast) and every backend applies exactly those.

Example:
    >>> from qfx.ir.ops import spec
    >>> spec("softmax").params, spec("sigmoid").casts
    (('exp_table', 'recip_table'), False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.tables import function_table, table_index
from qfx.ir.ops.base import NodeCost, OpSpec, check_accumulator, register, where

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["Exp", "Sigmoid", "Softmax", "Tanh", "softmax_types"]


def _same_format(a: FixedType, b: FixedType) -> bool:
    return (a.width, a.int_bits, a.signed) == (b.width, b.int_bits, b.signed)


def _check_table(node: Node, key: str, fn: str, in_t: FixedType, out_t: FixedType) -> None:
    table = node.params[key]
    if table.shape != (1 << in_t.width,):
        raise ValueError(f"{where(node)}: {key} must have 2**{in_t.width} entries (one per code "
                         f"of {in_t.cpp()}), has shape {table.shape}")
    expected = function_table(fn, in_t, out_t)
    if not np.array_equal(table, expected):
        bad = int(np.flatnonzero(table != expected)[0])
        raise ValueError(f"{where(node)}: {key}[{bad}] = {int(table[bad])} is not {fn} of that "
                         f"code quantised onto {out_t.cpp()} ({int(expected[bad])}); re-freeze")


def _lookup(table: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(table)).to(idx.device)[idx]


class TableActivation(OpSpec):
    """One lookup table over every code of the input type (see the module docstring)."""

    function: ClassVar[str]
    params = ("table",)
    attrs = ("index_type", "table_type")
    casts = False
    channelwise = True

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, x_t = node.attrs, ins[0].type
        if not _same_format(a["index_type"], x_t) or a["table_type"] != out.type:
            raise ValueError(f"{where(node)}: index_type / table_type must be the input's "
                             f"({x_t.cpp()}) and the output's ({out.type.cpp()}) formats")
        _check_table(node, "table", self.function, x_t, out.type)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        x_t, out_t = node.attrs["index_type"], node.attrs["table_type"]
        raw = torch.round(torch.ldexp(xs[0], torch.tensor(float(x_t.frac_bits),
                                                          dtype=torch.float64, device=device)))
        idx = table_index(raw.to(torch.int64), x_t)
        return out_t.from_int(_lookup(node.params["table"], idx))

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        return NodeCost(node.name, node.op)  # a ROM read per value, no arithmetic


@register
class Sigmoid(TableActivation):
    name = "sigmoid"
    function = "sigmoid"


@register
class Tanh(TableActivation):
    name = "tanh"
    function = "tanh"


@register
class Exp(TableActivation):
    name = "exp"
    function = "exp"


def softmax_types(x_t: FixedType, channels: int, exp_t: FixedType
                  ) -> tuple[FixedType, FixedType]:
    """``(diff_type, sum_type)`` of a softmax over ``channels`` values of ``x_t`` whose exp
    table has ``exp_t``: max - x exactly, and the exact sum of ``channels`` exp values (the
    op's accumulator rule; the frontends size a softmax with it, ``verify`` checks it).

    Example:
        >>> d, s = softmax_types(FixedType(8, 3), 10, FixedType(8, 1, False))
        >>> d.cpp(), s.cpp()
        ('ap_ufixed<8,3>', 'ap_ufixed<12,5>')
    """
    diff = FixedType.for_raw_range(0, x_t.raw_max - x_t.raw_min, x_t.frac_bits)
    lo, hi = channels * min(exp_t.raw_min, 0), channels * exp_t.raw_max
    return diff, FixedType.for_raw_range(lo, hi, exp_t.frac_bits)


@register
class Softmax(OpSpec):
    name = "softmax"
    params = ("exp_table", "recip_table")
    attrs = ("index_type", "diff_type", "exp_type", "sum_type", "recip_type", "acc_type")

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        if not ins[0].shape:
            raise ValueError(f"{where(node)}: needs a channel axis")
        return tuple(ins[0].shape)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        a, x = node.attrs, ins[0]
        at = where(node)
        e_t, r_t = a["exp_type"], a["recip_type"]
        diff_t, sum_t = softmax_types(x.type, x.shape[0], e_t)
        if not _same_format(a["index_type"], x.type) or a["diff_type"] != diff_t:
            raise ValueError(f"{at}: index_type must be the input's format ({x.type.cpp()}) and "
                             f"diff_type {diff_t.cpp()} (max - x exactly)")
        _check_table(node, "exp_table", "exp_neg", diff_t, e_t)
        check_accumulator(node, a["sum_type"], x.shape[0] * min(e_t.raw_min, 0),
                          x.shape[0] * e_t.raw_max, e_t.frac_bits)
        if a["sum_type"] != sum_t:
            raise ValueError(f"{at}: sum_type must be {sum_t.cpp()} (the exact sum of "
                             f"{x.shape[0]} values of {e_t.cpp()}), got {a['sum_type'].cpp()}")
        _check_table(node, "recip_table", "recip", sum_t, r_t)
        prods = [p * q for p in (e_t.raw_min, e_t.raw_max) for q in (r_t.raw_min, r_t.raw_max)]
        check_accumulator(node, a["acc_type"], min(prods), max(prods),
                          e_t.frac_bits + r_t.frac_bits)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        a, x = node.attrs, xs[0]
        x_t, e_t, r_t = a["index_type"], a["exp_type"], a["recip_type"]
        scale = torch.tensor(float(x_t.frac_bits), dtype=torch.float64, device=device)
        d = torch.round(torch.ldexp(x.amax(dim=1, keepdim=True) - x, scale)).to(torch.int64)
        e = _lookup(node.params["exp_table"], d)  # raw exp values
        s = e.sum(dim=1, keepdim=True)  # raw sum: exact (int64, the IR bounds it)
        r = _lookup(node.params["recip_table"], table_index(s, a["sum_type"]))
        prod = (e * r).to(torch.float64)  # exact: W_e + W_r <= 53 (check_exact)
        return torch.ldexp(prod, torch.tensor(-float(e_t.frac_bits + r_t.frac_bits),
                                              dtype=torch.float64, device=device))

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        n = int(np.prod(out.shape))
        c = int(ins[0].shape[0])
        positions = n // c
        adds = positions * (c + c - 1)  # c subtractions from the max, c - 1 additions
        return NodeCost(node.name, node.op, multipliers=n, mult_ops=n, additions=adds,
                        adder_bits=positions * (c * node.attrs["diff_type"].width + (c - 1)
                                                * node.attrs["sum_type"].width),
                        comparisons=positions * (c - 1))
