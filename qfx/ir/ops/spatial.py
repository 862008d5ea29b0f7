"""``upsample`` (nearest neighbour by integer factors) and ``pad`` (a constant border): both
move values without arithmetic, so the output keeps the input's format (no cast).

* ``upsample``: attrs ``scale`` = ``[s_h, s_w]`` (integers >= 1);
  ``y[c, h, w] = x[c, h // s_h, w // s_w]`` (PyTorch's ``nearest`` with integer factors).
* ``pad``: attrs ``pads`` = ``[top, left, bottom, right]`` (integers >= 0, ONNX's order for
  two spatial axes) and ``value``: the border's value, which must be a value of the input's
  format (a constant that is not is refused, never rounded). :func:`pad_raw` is its raw
  mantissa in that format (what the backends write).

Example:
    >>> from qfx.ir.ops import spec
    >>> spec("upsample").same_format, spec("pad").same_format
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from qfx.fixed.fixed_type import FixedType
from qfx.ir.ops.base import OpSpec, pair, register, where

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["Pad", "Upsample", "pad_raw", "pads4"]


def _chw(node: Node, x: Edge) -> tuple[int, int, int]:
    if len(x.shape) != 3:
        raise ValueError(f"{where(node)}: needs a (C, H, W) input, got shape {tuple(x.shape)}")
    return x.shape  # type: ignore[return-value]


def _keeps_type(node: Node, ins: Sequence[Edge], out: Edge) -> None:
    if out.type != ins[0].type:
        raise ValueError(f"{where(node)}: keeps its input type ({ins[0].type.cpp()}), the "
                         f"output edge has {out.type.cpp()}")


def _int_attr(node: Node, key: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or int(value) < low:
        raise ValueError(f"{where(node)}: {key} must be integers >= {low}, got {value!r}")
    return int(value)


def pads4(node: Node) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of a pad node, checked (integers >= 0)."""
    p = node.attrs["pads"]
    if not isinstance(p, (list, tuple)) or len(p) != 4:
        raise ValueError(f"{where(node)}: pads must be [top, left, bottom, right], got {p!r}")
    return tuple(_int_attr(node, "pads", v, 0) for v in p)  # type: ignore[return-value]


def pad_raw(node: Node, x_t: FixedType) -> int:
    """The raw mantissa of a pad node's ``value`` in the input format ``x_t`` (refused unless
    the value is exactly one of that format's values)."""
    v = Fraction(node.attrs["value"]) * (Fraction(2) ** x_t.frac_bits)
    if v.denominator != 1 or not x_t.raw_min <= v.numerator <= x_t.raw_max:
        raise ValueError(f"{where(node)}: the pad value {node.attrs['value']!r} is not a value "
                         f"of the input type {x_t.cpp()}")
    return int(v.numerator)


@register
class Upsample(OpSpec):
    name = "upsample"
    channelwise = True
    attrs = ("scale",)
    same_format = True
    casts = False
    keeps_binary = True

    def check_params(self, node: Node) -> None:
        s = node.attrs["scale"]
        vals = s if isinstance(s, (list, tuple)) else [s]
        if len(vals) not in (1, 2):
            raise ValueError(f"{where(node)}: scale must be [s_h, s_w], got {s!r}")
        for v in vals:
            _int_attr(node, "scale", v, 1)

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        c, h, w = _chw(node, ins[0])
        sh, sw = pair(node.attrs["scale"])
        return (c, h * sh, w * sw)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        _keeps_type(node, ins, out)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        sh, sw = pair(node.attrs["scale"])
        return xs[0].repeat_interleave(sh, dim=2).repeat_interleave(sw, dim=3)


@register
class Pad(OpSpec):
    name = "pad"
    channelwise = True
    attrs = ("pads", "value")
    same_format = True
    casts = False

    def check_params(self, node: Node) -> None:
        pads4(node)
        v = node.attrs["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where(node)}: value must be a finite number, got {v!r}")

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        c, h, w = _chw(node, ins[0])
        t, left, b, r = pads4(node)
        return (c, h + t + b, w + left + r)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        _keeps_type(node, ins, out)
        pad_raw(node, ins[0].type)

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        t, left, b, r = pads4(node)
        return F.pad(xs[0], (left, r, t, b), value=float(node.attrs["value"]))
