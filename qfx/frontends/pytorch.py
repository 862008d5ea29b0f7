"""`freeze`: turn a trained qfx model into the frozen integer graph (IR).

The model is traced with torch.fx (qfx layers are leaves), run once in eval mode on an example
input to learn every tensor's shape, and each qfx layer becomes an IR node with int64
parameters. Every accumulator is sized from the frozen weights (the L1 bound over the input
format's range), so no partial sum can round or overflow, in any order of additions.

Multiplier-free and binary layers:

* a K-hot weight or BatchNorm scale (``QConfig.weight_khot`` / ``bn_scale_khot``) keeps its
  value in ``weight`` / ``scale`` (the executor is unchanged) and adds its CSD digits,
  ``params["weight_digits"]`` / ``params["scale_digits"]`` (int64 ``[..., K, 2]`` of
  (sign, shift), see :func:`qfx.fixed.khot.khot_digits`), with ``attrs["weight_khot"]`` /
  ``attrs["scale_khot"] = K``; freeze checks that the digits rebuild the raw integers;
* ``QBinaryLinear`` / ``QBinaryConv2d`` become ``binary_dense`` / ``binary_conv2d``,
  ``QThermometer`` becomes ``thermometer``;
* a ``QSign`` becomes a ``threshold`` node; when its input is a BatchNorm used only by it,
  the BatchNorm is folded in: one integer threshold (and comparison direction) per channel
  on the BatchNorm's *input*, found by bisection over that input's raw integers of the exact
  eval function ``sign(BN(x))`` (monotone because every cast is), and checked against it.
  A BatchNorm whose output cast can wrap (not monotone) is kept, followed by a zero threshold.
  The op semantics are documented in :data:`qfx.ir.graph.BINARY_OPS_DOC`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.khot import KHotQuantizer, digits_to_raw, khot_digits
from qfx.fixed.learned_width import WidthQuantizer
from qfx.fixed.quantizer import FixedQuantizer
from qfx.fixed.tables import check_table_width, function_table
from qfx.frontends.thresholds import check_levels, first_true, level_thresholds
from qfx.ir.builder import GraphBuilder
from qfx.ir.graph import Graph
from qfx.ir.ops.activation import HardSigmoid
from qfx.ir.ops.pooling import AvgPool2d
from qfx.ir.ops.table import softmax_types
from qfx.ir.prune import prune_channels
from qfx.nn.activation import QHardSigmoid, QHardSwish, QHardTanh, QLeakyReLU, QReLU
from qfx.nn.base import QLayer
from qfx.nn.binary import BINARY_TYPE, QBinaryConv2d, QBinaryLinear, QSign, QThermometer
from qfx.nn.io import QFlatten, QInput
from qfx.nn.linear import QConv1d, QConv2d, QLinear
from qfx.nn.merge import QAdd, QConcat, QMul
from qfx.nn.norm import _QBatchNorm
from qfx.nn.pooling import QAvgPool2d, QMaxPool2d
from qfx.nn.spatial import QPad, QUpsample
from qfx.nn.table import QSoftmax, TableLayer

__all__ = ["freeze", "QTracer"]

_PASSTHROUGH = (nn.Identity, nn.Dropout)


class QTracer(fx.Tracer):
    """fx tracer that keeps every qfx layer as a single call (a leaf)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (QLayer, FixedQuantizer)) or super().is_leaf_module(m, qualname)


def _khot_param_raw(q: KHotQuantizer, value: torch.Tensor) -> tuple[np.ndarray, FixedType]:
    """Raw K-hot codes of a constant on one grid (the finest channel's), with its type."""
    value = value.detach().double()
    q.ensure_initialized(value)
    codes = q.to_int(value)
    if not q.per_channel:
        return codes.cpu().numpy(), q.fixed_type.storage()
    types = q.fixed_types
    frac = max(t.frac_bits for t in types)
    shape = [1] * codes.dim()
    shape[q.channel_dim % codes.dim()] = -1
    shifts = torch.tensor([frac - t.frac_bits for t in types], dtype=torch.int64,
                          device=codes.device).view(shape)
    raw = torch.bitwise_left_shift(codes, shifts).cpu().numpy()  # still K-hot: digits shift
    return raw, FixedType.for_raw_range(int(raw.min()), int(raw.max()), frac)


def _khot_digits_checked(raw: np.ndarray, k: int, where: str) -> np.ndarray:
    """CSD digits of K-hot raw integers, asserted to rebuild them exactly."""
    digits = khot_digits(torch.from_numpy(raw), k)
    if not torch.equal(digits_to_raw(digits), torch.from_numpy(raw)):
        raise RuntimeError(f"{where}: the K-hot digits do not rebuild the constants (a bug)")
    return digits.numpy()


def _param_raw(q: FixedQuantizer, value: torch.Tensor) -> tuple[np.ndarray, FixedType]:
    """Raw int64 mantissas of a quantised constant, with one type for the whole tensor."""
    if isinstance(q, KHotQuantizer):
        return _khot_param_raw(q, value)
    if isinstance(q, WidthQuantizer):  # learned widths: each granule on the finest grid
        q.ensure_initialized(value)
        raw_t, t = q.raw_and_type(value)
        return raw_t.cpu().numpy(), t
    value = value.detach().double()
    q.ensure_initialized(value)
    if not q.per_channel:  # quantise with the quantizer's modes, store without them
        t = q.fixed_type
        return t.to_int(value).cpu().numpy(), t.storage()
    # per-channel formats: put every channel on the finest grid (exact), then size one type
    types = q.fixed_types
    frac = max(t.frac_bits for t in types)
    chans = value.movedim(q.channel_dim, 0)
    raw = torch.stack([t.to_int(c) << (frac - t.frac_bits) for t, c in zip(types, chans,
                                                                              strict=True)])
    raw_np = raw.movedim(0, q.channel_dim).cpu().numpy()
    return raw_np, FixedType.for_raw_range(int(raw_np.min()), int(raw_np.max()), frac)


def _row_shifts(q: FixedQuantizer, raw: np.ndarray) -> list[int] | None:
    """Per output channel of a weight (or BatchNorm scale) with per-granule formats (learned
    widths), the trailing zero bits common to its raw values on the tensor's grid
    (``weight_shift`` / ``scale_shift``: the backends store narrow mantissas); None for one
    format per tensor or when every shift is 0."""
    if not isinstance(q, WidthQuantizer) or q.granularity == "tensor":
        return None
    shifts = []
    for row in raw.reshape(raw.shape[0], -1):
        nz = row[row != 0]
        shifts.append(min(int(v & -v).bit_length() - 1 for v in np.abs(nz).tolist())
                      if nz.size else 0)
    return [min(s, 62) for s in shifts] if any(shifts) else None


def _frac_of(v: float) -> int:
    """Fractional bits needed to hold the float ``v`` exactly."""
    return max(Fraction(v).denominator.bit_length() - 1, 0)


def _bisect_threshold(positive, lo: int, hi: int, channels: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel, (T, direction) with ``positive(a) == (a >= T if direction > 0 else
    a <= T)`` for every raw integer a in [lo, hi], for a monotone ``positive``."""
    lo_t = torch.full((channels,), lo, dtype=torch.int64)
    hi_t = torch.full((channels,), hi, dtype=torch.int64)
    ends = positive(torch.stack([lo_t, hi_t]))
    falling = ends[0] & ~ends[1]
    # smallest a with h(a) = positive(a) XOR falling true (h(hi + 1) taken as true)
    right = first_true(lambda a: positive(a) ^ falling, lo, hi, channels)
    t = torch.where(falling, right - 1, right)
    return t, torch.where(falling, -1, 1).to(torch.int64)


def _check_threshold(positive, t: torch.Tensor, direction: torch.Tensor, lo: int, hi: int,
                     where: str) -> None:
    """Compare the threshold rule with the function it replaces: everywhere on small domains,
    else at both ends, around every threshold and at random points."""
    channels = t.numel()
    if (hi - lo + 1) * channels <= 1 << 22:
        a = torch.arange(lo, hi + 1, dtype=torch.int64).unsqueeze(1).expand(-1, channels)
    else:
        gen = torch.Generator().manual_seed(0)
        rand = lo + (torch.rand(64, channels, generator=gen, dtype=torch.float64)
                     * (hi - lo)).to(torch.int64)
        a = torch.cat([torch.full((1, channels), lo), torch.full((1, channels), hi),
                       (t + torch.arange(-1, 2).unsqueeze(1)).clamp(lo, hi), rand])
    rule = torch.where(direction > 0, a >= t, a <= t)
    if not torch.equal(rule, positive(a)):
        raise RuntimeError(f"{where}: BatchNorm + sign is not a threshold function of its "
                           "input (a bug: every cast on the path should be monotone)")


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self.values[n] = out
        return out


class _Freezer:
    def __init__(self, gm: fx.GraphModule, values: dict[fx.Node, Any],
                 fold_thresholds: bool = False) -> None:
        self.gm, self.values = gm, values
        self.fold_thresholds = fold_thresholds
        self.build = GraphBuilder()
        self.edge_of: dict[fx.Node, str] = {}
        self.deferred_bn: set[fx.Node] = set()  # BatchNorms folded into the next threshold

    def _shape(self, n: fx.Node) -> tuple[int, ...]:
        v = self.values[n]
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"node {n.name!r} does not produce a tensor")
        return tuple(v.shape[1:])

    def _edge(self, n: fx.Node) -> str:
        try:
            return self.edge_of[n]
        except KeyError:
            raise ValueError(f"{n.name!r} is used before it has a fixed-point format: every "
                             "model input must go through qfx.nn.QInput first") from None

    def _type(self, n: fx.Node) -> FixedType:
        return self.build.type(self._edge(n))

    def _size_acc(self, n: fx.Node, op: str, inputs: list[fx.Node], attrs: dict[str, Any],
                  params: dict[str, np.ndarray]) -> FixedType:
        """Set ``attrs["acc_type"]`` to the exact accumulator of the node (the op's rule)."""
        node = self.build.node(op, [self._edge(i) for i in inputs], attrs, params)
        attrs["acc_type"] = self.build.size_accumulator(node, f"layer {n.target!r}")
        return attrs["acc_type"]

    def _emit(self, n: fx.Node, op: str, inputs: list[fx.Node], out_t: FixedType | None,
              attrs: dict[str, Any] | None = None, params: dict[str, np.ndarray] | None = None,
              source: str = "", acc: bool = False) -> None:
        """Add the IR node of ``n``; ``acc``: size its exact ``acc_type`` by the op's rule
        (``out_t=None``: the output is the accumulator itself)."""
        attrs, params = dict(attrs or {}), dict(params or {})
        if acc:
            self._size_acc(n, op, inputs, attrs, params)
        node = self.build.node(op, [self._edge(i) for i in inputs], attrs, params,
                               source or str(n.target))
        base = str(n.target) if n.op == "call_module" else n.name
        self.edge_of[n] = self.build.add_node(node, base, out_t or node.attrs["acc_type"],
                                              self._shape(n))

    def _unsupported(self, n: fx.Node, what: str) -> ValueError:
        return ValueError(
            f"cannot freeze {what}: not a supported qfx layer. Supported: {_supported()} "
            "(qfx.quantize_model converts torch.nn models)"
        )

    def run(self) -> Graph:
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                continue  # becomes a graph input at its QInput
            if n.op == "output":
                outs = n.args[0] if isinstance(n.args[0], (tuple, list)) else [n.args[0]]
                outputs = [self.edge_of[o] for o in outs]
            elif n.op == "call_module":
                self._module(n, self.gm.get_submodule(n.target))
            elif n.op == "call_function":
                self._function(n)
            elif n.op == "call_method":
                self._method(n)
            else:
                raise self._unsupported(n, f"node {n.name!r} ({n.op})")
        return self.build.finish(outputs)

    # ------------------------------------------------------------------ modules
    def _module(self, n: fx.Node, m: nn.Module) -> None:
        """Convert one module call by the rule of its class (the first in its MRO with one)."""
        src = n.args[0] if n.args else None
        for cls in type(m).__mro__:
            rule = _MODULE_RULES.get(cls)
            if rule is not None:
                rule(self, n, m, src)
                return
        raise self._unsupported(n, f"module {n.target!r} of type {type(m).__name__}")

    def _input(self, n: fx.Node, m: QInput, src: fx.Node | None) -> None:
        if src is None or src.op != "placeholder":
            raise ValueError(f"QInput {n.target!r} must take a model input directly")
        t = m.output_quantizer.fixed_type
        self.edge_of[src] = self.build.add_input(src.name, self._shape(src), t)
        self._emit(n, "input", [src], t)

    def _batchnorm_or_fold(self, n: fx.Node, m: _QBatchNorm, src: fx.Node) -> None:
        if self._bn_folds_into_sign(n, m, src):
            self.deferred_bn.add(n)  # emitted as part of the threshold of its QSign
        elif self.fold_thresholds and self._bn_folds_into_activation(n, m, src):
            self.deferred_bn.add(n)  # emitted as part of its activation's multithreshold
        else:
            self._batchnorm(n, m, src)

    def _relu(self, n: fx.Node, m: QReLU, src: fx.Node) -> None:
        if src in self.deferred_bn:
            return self._multithreshold(n, m, src)
        self._emit(n, "relu", [src], m.output_quantizer.fixed_type)

    def _hardtanh(self, n: fx.Node, m: QHardTanh, src: fx.Node) -> None:
        if src in self.deferred_bn:
            return self._multithreshold(n, m, src)
        x_t = self._type(src)
        frac = max(x_t.frac_bits, _frac_of(m.min_val), _frac_of(m.max_val))
        lo, hi = int(m.min_val * 2**frac), int(m.max_val * 2**frac)
        shift = frac - x_t.frac_bits
        clamp_t = FixedType.for_raw_range(min(lo, x_t.raw_min << shift),
                                          max(hi, x_t.raw_max << shift), frac)
        self._emit(n, "hardtanh", [src], m.output_quantizer.fixed_type,
                   {"min_raw": lo, "max_raw": hi, "clamp_type": clamp_t})

    def _add(self, n: fx.Node, m: QAdd, src: fx.Node) -> None:
        self._emit(n, "add", [n.args[0], n.args[1]], m.output_quantizer.fixed_type, acc=True)

    def _maxpool(self, n: fx.Node, m: QMaxPool2d, src: fx.Node) -> None:
        self._emit(n, "maxpool2d", [src], self._type(src),
                   {"kernel": list(m.kernel_size), "stride": list(m.stride),
                    "padding": list(m.padding), "dilation": list(m.dilation),
                    "ceil_mode": bool(m.ceil_mode)})

    def _flatten(self, n: fx.Node, m: nn.Module, src: fx.Node) -> None:
        if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
            raise self._unsupported(n, f"module {n.target!r} (nn.Flatten with start_dim="
                                    f"{m.start_dim}, end_dim={m.end_dim})")
        self._emit(n, "flatten", [src], self._type(src))

    def _passthrough(self, n: fx.Node, m: nn.Module, src: fx.Node) -> None:
        self.edge_of[n] = self.edge_of[src]

    def _weighted(self, n: fx.Node, m: QLinear | QConv2d, src: fx.Node) -> None:
        w_raw, w_t = _param_raw(m.weight_quantizer, m.weight)
        params = {"weight": w_raw}
        attrs: dict[str, Any] = {"weight_type": w_t}
        if m.bias is not None:
            params["bias"], attrs["bias_type"] = _param_raw(m.bias_quantizer, m.bias)
        op = "conv2d" if isinstance(m, QConv2d) else "dense"
        acc_t = self._size_acc(n, op, [src], attrs, params)
        if (shifts := _row_shifts(m.weight_quantizer, w_raw)) is not None:
            attrs["weight_shift"] = shifts
        if isinstance(m.weight_quantizer, KHotQuantizer):
            k = m.weight_quantizer.k
            params["weight_digits"] = _khot_digits_checked(w_raw, k, f"layer {n.target!r}")
            attrs["weight_khot"] = k
        if isinstance(m, QConv2d):
            attrs.update(stride=list(m.stride), padding=list(m.padding),
                         dilation=list(m.dilation), groups=int(m.groups))
        q = m.output_quantizer
        self._emit(n, op, [src], acc_t if q is None else q.fixed_type, attrs, params)

    def _bn_constants(self, n: fx.Node, m: _QBatchNorm
                      ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The batchnorm node's attrs (scale/shift types) and params (raw values)."""
        with torch.no_grad():
            scale, shift = m.quantized_scale_shift()  # the eval path's exact values
        params, attrs = {}, {}
        for key, q, v in (("scale", m.scale_quantizer, scale), ("shift", m.shift_quantizer,
                                                                 shift)):
            if isinstance(q, WidthQuantizer):  # per-channel learned formats: v is exact
                params[key], attrs[f"{key}_type"] = _param_raw(q, v)
            else:
                attrs[f"{key}_type"] = t = q.fixed_type.storage()
                params[key] = t.to_int(v).cpu().numpy()
        if (shifts := _row_shifts(m.scale_quantizer, params["scale"])) is not None:
            attrs["scale_shift"] = shifts  # per-channel formats: narrow scale mantissas
        if isinstance(m.scale_quantizer, KHotQuantizer):
            k = m.scale_quantizer.k
            params["scale_digits"] = _khot_digits_checked(params["scale"], k,
                                                          f"layer {n.target!r}")
            attrs["scale_khot"] = k
        return attrs, params

    def _batchnorm(self, n: fx.Node, m: _QBatchNorm, src: fx.Node) -> None:
        attrs, params = self._bn_constants(n, m)
        self._emit(n, "batchnorm", [src], m.output_quantizer.fixed_type, attrs, params,
                   acc=True)

    # ------------------------------------------------------------------ binary layers
    def _bn_folds_into_sign(self, n: fx.Node, m: _QBatchNorm, src: fx.Node) -> bool:
        """A BatchNorm used only by a QSign, whose output cast is monotone, folds into it."""
        users = list(n.users)
        if len(users) != 1 or users[0].op != "call_module" or not isinstance(
                self.gm.get_submodule(users[0].target), QSign):
            return False
        return self._bn_cast_monotone(m, src)

    def _sign(self, n: fx.Node, m: QSign, src: fx.Node) -> None:
        """A QSign (with its folded BatchNorm) as one per-channel integer threshold."""
        bn: _QBatchNorm | None = None
        source = str(n.target)
        if src in self.deferred_bn:
            bn = self.gm.get_submodule(src.target)
            source = f"{src.target}+{n.target}"
            attrs, params = self._bn_constants(src, bn)  # its accumulator: exact in float64?
            self.build.size_accumulator(self.build.node(
                "batchnorm", [self.edge_of[src.args[0]]], attrs, params), f"layer {src.target!r}")
            src = src.args[0]
        x_t = self._type(src)
        shape = self._shape(src)
        channels = shape[0]
        frac = torch.tensor(-float(x_t.frac_bits), dtype=torch.float64)

        def positive(a: torch.Tensor) -> torch.Tensor:  # a: raw ints [M, C] -> sign == +1
            v = torch.ldexp(a.to(torch.float64), frac)
            if bn is not None:
                v = bn(v.reshape(a.shape[0], channels, *([1] * (len(shape) - 1))))
            return m(v).reshape(a.shape[0], channels) > 0

        lo, hi = x_t.raw_min, x_t.raw_max
        with torch.no_grad():
            t, direction = _bisect_threshold(positive, lo, hi, channels)
            _check_threshold(positive, t, direction, lo, hi, f"layer {source!r}")
        t_t = FixedType.for_raw_range(int(t.min()), int(t.max()), x_t.frac_bits)
        self._emit(n, "threshold", [src], BINARY_TYPE, {"threshold_type": t_t},
                   {"threshold": t.numpy(), "direction": direction.numpy()}, source=source)

    # ------------------------------------------------------------------ multithreshold folding
    # freeze(..., fold_thresholds=True): a BatchNorm used only by a QReLU / QHardTanh becomes,
    # with it, one `multithreshold` on the BatchNorm's input. The activation's output raw code
    # f(a) is a monotone function of the input's raw code a (every cast on the path is monotone:
    # SAT, or a range that cannot overflow), so with lo_out the lowest code over all channels,
    # f(a) = lo_out + #{k : f(a) >= lo_out + 1 + k}, and each of those predicates is one integer
    # comparison: a >= T (rising channel) or a <= T (falling: BatchNorm scale < 0). T is found by
    # bisection on the eval function itself (the model's own float64 BatchNorm, rounding and
    # saturation), so a value exactly on a rounding tie goes where the unfolded model sends it;
    # the rule is then compared with f on every input code (sampled beyond 2**20 codes x channels).
    def _bn_folds_into_activation(self, n: fx.Node, m: _QBatchNorm, src: fx.Node) -> bool:
        """A BatchNorm used only by a QReLU/QHardTanh, every cast monotone, folds into it."""
        users = list(n.users)
        if len(users) != 1 or users[0].op != "call_module":
            return False
        act = self.gm.get_submodule(users[0].target)
        if not isinstance(act, (QReLU, QHardTanh)) or not self._bn_cast_monotone(m, src):
            return False
        act_t = act.output_quantizer.fixed_type
        if act_t.overflow in ("SAT", "SAT_SYM"):
            return True
        bn_t = m.output_quantizer.fixed_type  # a wrapping activation: only if it cannot overflow
        lo, hi = (Fraction(bn_t.min), Fraction(bn_t.max))
        if isinstance(act, QHardTanh):
            lo, hi = max(lo, Fraction(act.min_val)), min(hi, Fraction(act.max_val))
        lo = max(lo, Fraction(0)) if isinstance(act, QReLU) else lo
        step = Fraction(2) ** -act_t.frac_bits  # rounding moves a value by less than a step
        return Fraction(act_t.min) + step <= lo and hi <= Fraction(act_t.max) - step

    def _bn_cast_monotone(self, m: _QBatchNorm, src: fx.Node) -> bool:
        """The BatchNorm's output cast is monotone (saturating, or no value can overflow)."""
        out_t = m.output_quantizer.fixed_type
        if out_t.overflow in ("SAT", "SAT_SYM"):
            return True
        x_t = self._type(src)
        with torch.no_grad():
            scale, shift = m.quantized_scale_shift()
        ends = [Fraction(x_t.min), Fraction(x_t.max)]
        values = [Fraction(s) * v + Fraction(h)
                  for s, h in zip(scale.tolist(), shift.tolist(), strict=True) for v in ends]
        return Fraction(out_t.min) <= min(values) and max(values) <= Fraction(out_t.max)

    def _multithreshold(self, n: fx.Node, act: QReLU | QHardTanh, bn_node: fx.Node) -> None:
        """BatchNorm + activation as one multithreshold (see the block comment above)."""
        bn = self.gm.get_submodule(bn_node.target)
        source = f"{bn_node.target}+{n.target}"
        attrs, params = self._bn_constants(bn_node, bn)  # its accumulator: exact in float64?
        self.build.size_accumulator(self.build.node(
            "batchnorm", [self.edge_of[bn_node.args[0]]], attrs, params),
            f"layer {bn_node.target!r}")
        src = bn_node.args[0]
        x_t, shape = self._type(src), self._shape(src)
        channels, act_t = shape[0], act.output_quantizer.fixed_type
        frac = torch.tensor(-float(x_t.frac_bits), dtype=torch.float64)

        def code(a: torch.Tensor) -> torch.Tensor:  # raw ints [M, C] -> output raw [M, C]
            v = torch.ldexp(a.to(torch.float64), frac)
            y = act(bn(v.reshape(a.shape[0], channels, *([1] * (len(shape) - 1)))))
            return act_t.to_int(y.reshape(a.shape[0], channels))

        lo, hi = x_t.raw_min, x_t.raw_max
        with torch.no_grad():
            t, direction, lo_out = level_thresholds(code, lo, hi, channels)
            check_levels(code, t, direction, lo_out, lo, hi, f"layer {source!r}")
        t_t = FixedType.for_raw_range(int(t.min()), int(t.max()), x_t.frac_bits)
        self._emit(n, "multithreshold", [src], act_t,
                   {"threshold_type": t_t, "out_scale": 1, "out_bias": lo_out,
                    "out_frac": act_t.frac_bits},
                   {"thresholds": t.numpy(), "direction": direction.numpy()}, source=source)

    def _binary(self, n: fx.Node, m: QBinaryLinear | QBinaryConv2d, src: fx.Node) -> None:
        edge = self.edge_of.get(src)
        if edge is None or not self.build.is_binary(edge):
            producer = self.build.graph.producer(edge) if edge is not None else None
            raise ValueError(
                f"{type(m).__name__} {n.target!r} needs {{-1, +1}} inputs, but its input "
                f"comes from {'a ' + producer.op + ' node' if producer else 'a model input'}: "
                "put a QSign (BatchNorm + sign) or a QThermometer before it")
        with torch.no_grad():
            w = m.binary_weight().to(torch.int64).cpu().numpy()
        params: dict[str, np.ndarray] = {"weight": w}
        attrs: dict[str, Any] = {"fan_in": int(m.fan_in)}
        op = "binary_conv2d" if isinstance(m, QBinaryConv2d) else "binary_dense"
        if m.scale is None:  # the output is the dot itself: no cast
            out_t = attrs["acc_type"] = m.output_type
        else:
            with torch.no_grad():
                scale = m.quantized_scale()
            s_t = m.scale_quantizer.fixed_type.storage()
            s_raw = s_t.to_int(scale).cpu().numpy()
            params["scale"], attrs["scale_type"] = s_raw, s_t
            if isinstance(m.scale_quantizer, KHotQuantizer):
                k = m.scale_quantizer.k
                params["scale_digits"] = _khot_digits_checked(s_raw, k, f"layer {n.target!r}")
                attrs["scale_khot"] = k
            self._size_acc(n, op, [src], attrs, params)
            out_t = m.output_quantizer.fixed_type
        if isinstance(m, QBinaryConv2d):
            attrs.update(stride=list(m.stride), padding=list(m.padding),
                         dilation=list(m.dilation), groups=int(m.groups), pad_value=-1)
        self._emit(n, op, [src], out_t, attrs, params)

    def _thermometer(self, n: fx.Node, m: QThermometer, src: fx.Node) -> None:
        x_t = self._type(src)
        raw = []
        for t in m.thresholds.tolist():  # x >= t  <=>  raw >= ceil(t * 2**F), exactly
            r = math.ceil(Fraction(t) * Fraction(2) ** x_t.frac_bits)
            raw.append(min(max(r, x_t.raw_min), x_t.raw_max + 1))
        t_t = FixedType.for_raw_range(min(raw), max(raw), x_t.frac_bits)
        self._emit(n, "thermometer", [src], BINARY_TYPE,
                   {"threshold_type": t_t, "levels": int(m.levels)},
                   {"thresholds": np.array(raw, dtype=np.int64)})

    def _avgpool(self, n: fx.Node, m: QAvgPool2d, src: fx.Node) -> None:
        attrs: dict[str, Any] = {"kernel": list(m.kernel_size), "stride": list(m.stride),
                                 "sum_type": AvgPool2d.sum_type(self._type(src),
                                                               math.prod(m.kernel_size))}
        params = {}
        if m.padding != (0, 0) or m.ceil_mode:  # PyTorch's windows (padding adds zeros)
            attrs.update(padding=list(m.padding), ceil_mode=bool(m.ceil_mode))
        if m.recip_map is not None:  # a reciprocal per output position
            params["recip"] = np.asarray(m.recip_map, dtype=np.int64)
            attrs["recip_type"] = m.recip_type.storage()
        elif m.shift is not None:
            attrs["shift"] = m.shift
        else:
            recip = torch.tensor([1.0 / m.area], dtype=torch.float64)
            params["recip"] = m.recip_quantizer.to_int(recip).cpu().numpy()
            attrs["recip_type"] = m.recip_type.storage()
        self._emit(n, "avgpool2d", [src], m.output_quantizer.fixed_type, attrs, params,
                   acc=True)

    # ---- table activations (sigmoid, tanh, exp, softmax): tables filled by qfx.fixed.tables
    def _table(self, n: fx.Node, m: TableLayer, src: fx.Node) -> None:
        x_t, out_t = self._type(src), m.output_quantizer.fixed_type
        check_table_width(x_t.width, f"layer {n.target!r} ({m.function}) input {x_t.cpp()}",
                          m.table_max_bits)
        self._emit(n, m.function, [src], out_t, {"index_type": x_t, "table_type": out_t},
                   {"table": np.array(function_table(m.function, x_t, out_t))})

    def _softmax(self, n: fx.Node, m: QSoftmax, src: fx.Node) -> None:
        x_t, shape = self._type(src), self._shape(src)
        diff_t, sum_t = softmax_types(x_t, shape[0], m.exp_type)
        where = f"layer {n.target!r} (softmax)"
        check_table_width(diff_t.width, f"{where} input {x_t.cpp()}", m.table_max_bits)
        check_table_width(sum_t.width, f"{where} sum of {shape[0]} exp values {sum_t.cpp()}",
                          m.table_max_bits)
        attrs = {"index_type": x_t, "diff_type": diff_t, "exp_type": m.exp_type,
                 "sum_type": sum_t, "recip_type": m.recip_type,
                 "acc_type": FixedType.mul(m.exp_type, m.recip_type)}
        params = {"exp_table": np.array(function_table("exp_neg", diff_t, m.exp_type)),
                  "recip_table": np.array(function_table("recip", sum_t, m.recip_type))}
        self._emit(n, "softmax", [src], m.output_quantizer.fixed_type, attrs, params)

    # ------------------------------------------------------------------ functions, methods
    def _flatten_like(self, n: fx.Node, src: fx.Node) -> None:
        in_shape, out_shape = self._shape(src), self._shape(n)
        if len(out_shape) != 1 or out_shape[0] != math.prod(in_shape):
            raise self._unsupported(n, f"reshape {n.name!r} to {out_shape} (only flattening "
                                    "everything after the batch dimension is supported)")
        if len(in_shape) == 1:
            self.edge_of[n] = self.edge_of[src]
        else:
            self._emit(n, "flatten", [src], self._type(src), source=n.name)

    def _function(self, n: fx.Node) -> None:
        rule = _FUNCTION_RULES.get(n.target)
        if rule is not None:
            rule(self, n)
        elif n.target is torch.flatten:
            self._flatten_like(n, n.args[0])
        elif n.target in (operator.getitem,) and not isinstance(self.values[n], torch.Tensor):
            return
        else:
            name = getattr(n.target, "__name__", str(n.target))
            raise self._unsupported(n, f"function call {name!r} at node {n.name!r} (residual "
                                    "adds must be QAdd modules)")

    def _method(self, n: fx.Node) -> None:
        if n.target == "size":
            return  # shape arithmetic feeding a view/reshape; no data flows through it
        if n.target in ("view", "reshape", "flatten"):
            self._flatten_like(n, n.args[0])
        elif n.target in ("contiguous",):
            self.edge_of[n] = self.edge_of[n.args[0]]
        else:
            raise self._unsupported(n, f"method call .{n.target}() at node {n.name!r}")



#: module class -> the _Freezer method that converts it (subclasses inherit their base's rule)
_MODULE_RULES: dict[type, Any] = {
    QInput: _Freezer._input, QLinear: _Freezer._weighted, QConv2d: _Freezer._weighted,
    _QBatchNorm: _Freezer._batchnorm_or_fold, QSign: _Freezer._sign,
    QBinaryLinear: _Freezer._binary, QBinaryConv2d: _Freezer._binary,
    QThermometer: _Freezer._thermometer, QReLU: _Freezer._relu, QHardTanh: _Freezer._hardtanh,
    QAdd: _Freezer._add, QMaxPool2d: _Freezer._maxpool, QAvgPool2d: _Freezer._avgpool,
    QFlatten: _Freezer._flatten, nn.Flatten: _Freezer._flatten,
    TableLayer: _Freezer._table, QSoftmax: _Freezer._softmax,  # table activations
    **{cls: _Freezer._passthrough for cls in _PASSTHROUGH},
}


# ---------------------------------------------------------------------- ops-window: exact
# piecewise-linear activations (leaky_relu, hardsigmoid, hardswish)
def _leaky_relu(self: _Freezer, n: fx.Node, m: QLeakyReLU, src: fx.Node) -> None:
    self._emit(n, "leaky_relu", [src], m.output_quantizer.fixed_type, {"shift": int(m.shift)},
               acc=True)


def _hard_gate(self: _Freezer, n: fx.Node, m: QHardSigmoid | QHardSwish, src: fx.Node) -> None:
    op = "hardswish" if isinstance(m, QHardSwish) else "hardsigmoid"
    c_t = m.scale_type.storage()
    attrs: dict[str, Any] = {"scale_raw": int(m.scale_raw), "scale_type": c_t}
    attrs["gate_type"] = HardSigmoid.size_gate(self._type(src), c_t, int(m.scale_raw),
                                               f"layer {n.target!r}")
    self._emit(n, op, [src], m.output_quantizer.fixed_type, attrs, acc=True)


def _conv1d(self: _Freezer, n: fx.Node, m: QConv1d, src: fx.Node) -> None:
    w_raw, w_t = _param_raw(m.weight_quantizer, m.weight)
    params = {"weight": w_raw}
    attrs: dict[str, Any] = {"weight_type": w_t, "stride": int(m.stride),
                             "padding": int(m.padding), "dilation": int(m.dilation),
                             "groups": int(m.groups)}
    if m.bias is not None:
        params["bias"], attrs["bias_type"] = _param_raw(m.bias_quantizer, m.bias)
    acc_t = self._size_acc(n, "conv1d", [src], attrs, params)
    if (shifts := _row_shifts(m.weight_quantizer, w_raw)) is not None:
        attrs["weight_shift"] = shifts
    if isinstance(m.weight_quantizer, KHotQuantizer):
        raise ValueError(f"layer {n.target!r}: K-hot QConv1d weights are not supported; use "
                         "plain fixed-point weights")
    q = m.output_quantizer
    self._emit(n, "conv1d", [src], acc_t if q is None else q.fixed_type, attrs, params)


_MODULE_RULES.update({QLeakyReLU: _leaky_relu, QHardSigmoid: _hard_gate, QHardSwish: _hard_gate,
                      QConv1d: _conv1d})


# ---------------------------------------------------------------------- concat, upsample, pad, mul
# (ops-graph). A qfx layer casts to its learned format; the plain torch module or function keeps
# the exact result (concat: the aligned type; mul: the product type; upsample, pad: the input's).
def _concat_args(self: _Freezer, n: fx.Node, tensors: Any) -> list[fx.Node]:
    xs = list(tensors)
    if len(xs) < 2 or not all(isinstance(x, fx.Node) for x in xs):
        raise self._unsupported(n, f"concatenation {n.name!r} of {len(xs)} tensor(s)")
    return xs


def _emit_concat(self: _Freezer, n: fx.Node, xs: list[fx.Node], out_t: FixedType | None) -> None:
    """``cat(xs)`` as a chain of two-input concat nodes: every inner one exact (its output is
    its aligned type), the last one cast to ``out_t`` (None: exact too)."""
    base = str(n.target) if n.op == "call_module" else n.name
    edge = self._edge(xs[0])
    for i, x in enumerate(xs[1:-1], 1):  # the exact partial results
        node = self.build.node("concat", [edge, self._edge(x)], source=base)
        acc_t = self.build.size_accumulator(node, f"concatenation {base!r}")
        node.attrs["acc_type"] = acc_t
        shape = torch.cat([self.values[a] for a in xs[:i + 1]], dim=1).shape[1:]
        edge = self.build.add_node(node, f"{base}_part{i}", acc_t, tuple(shape))
    node = self.build.node("concat", [edge, self._edge(xs[-1])], source=base)
    node.attrs["acc_type"] = self.build.size_accumulator(node, f"concatenation {base!r}")
    self.edge_of[n] = self.build.add_node(node, base, out_t or node.attrs["acc_type"],
                                          self._shape(n))


def _concat_dim(n: fx.Node) -> int:
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
    return int(dim)


def _freeze_qconcat(self: _Freezer, n: fx.Node, m: nn.Module, src: fx.Node | None) -> None:
    _emit_concat(self, n, _concat_args(self, n, n.args), m.output_quantizer.fixed_type)


def _freeze_cat(self: _Freezer, n: fx.Node) -> None:
    if _concat_dim(n) not in (1, -len(self._shape(n)) - 1) or n.kwargs.get("out") is not None:
        raise self._unsupported(n, f"concatenation {n.name!r} along dim {_concat_dim(n)} "
                                "(only the channel axis, dim=1)")
    _emit_concat(self, n, _concat_args(self, n, n.args[0]), None)


def _emit_mul(self: _Freezer, n: fx.Node, a: Any, b: Any, out_t: FixedType | None) -> None:
    if not isinstance(a, fx.Node) or not isinstance(b, fx.Node):
        raise self._unsupported(n, f"multiplication {n.name!r} by a Python number (use a "
                                "layer with a fixed-point constant)")
    if math.prod(self._shape(a)) < math.prod(self._shape(b)):
        a, b = b, a  # the gate second (the product is symmetric)
    self._emit(n, "mul", [a, b], out_t, acc=True)


def _freeze_qmul(self: _Freezer, n: fx.Node, m: nn.Module, src: fx.Node | None) -> None:
    _emit_mul(self, n, n.args[0], n.args[1], m.output_quantizer.fixed_type)


def _freeze_mul(self: _Freezer, n: fx.Node) -> None:
    _emit_mul(self, n, n.args[0], n.args[1], None)


def _freeze_upsample(self: _Freezer, n: fx.Node, m: nn.Module, src: fx.Node | None) -> None:
    if isinstance(m, QUpsample):
        scale = list(m.scale)
    else:
        in_shape, out_shape = self._shape(src), self._shape(n)
        if m.mode != "nearest" or len(in_shape) != 3 or any(
                o % i for o, i in zip(out_shape[1:], in_shape[1:], strict=True)):
            raise self._unsupported(n, f"module {n.target!r} (nn.Upsample mode={m.mode!r}, "
                                    f"{tuple(in_shape)} -> {tuple(out_shape)}): only nearest "
                                    "upsampling by integer factors")
        scale = [o // i for o, i in zip(out_shape[1:], in_shape[1:], strict=True)]
    self._emit(n, "upsample", [src], self._type(src), {"scale": scale})


def _freeze_pad(self: _Freezer, n: fx.Node, m: nn.Module, src: fx.Node | None) -> None:
    p = m.padding
    left, right, top, bottom = (p,) * 4 if isinstance(p, int) else tuple(p)
    self._emit(n, "pad", [src], self._type(src),
               {"pads": [int(top), int(left), int(bottom), int(right)], "value": float(m.value)})


_MODULE_RULES.update({
    QConcat: _freeze_qconcat, QMul: _freeze_qmul, QUpsample: _freeze_upsample,
    nn.Upsample: _freeze_upsample, QPad: _freeze_pad, nn.ConstantPad2d: _freeze_pad,
    nn.ZeroPad2d: _freeze_pad,
})

#: function -> the freeze rule for a call of it (plain torch functions: exact results, no cast)
_FUNCTION_RULES: dict[Any, Any] = {
    torch.cat: _freeze_cat, torch.concat: _freeze_cat, torch.mul: _freeze_mul,
    operator.mul: _freeze_mul,
}


def _supported() -> str:
    """The modules and functions freeze converts, read from its rule tables (never restated)."""
    def family(cls: type) -> list[type]:  # a rule also converts qfx subclasses of its class
        return [cls] + [s for sub in cls.__subclasses__() if sub.__module__.startswith("qfx")
                        for s in family(sub)]

    names: set[str] = set()
    for c in (c for cls in _MODULE_RULES for c in family(cls)):
        if c.__module__.startswith("torch"):
            names.add(f"nn.{c.__name__}")
        elif c.__name__.startswith("Q"):  # qfx's layers; skips bases such as _QBatchNorm
            names.add(c.__name__)
    names.update(f"torch.{getattr(f, '__name__', f)}" if getattr(f, "__module__", "") != "_operator"
                 else f"operator.{f.__name__}" for f in _FUNCTION_RULES)
    return ", ".join(sorted(names))


def freeze(model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor], *,
           fold_thresholds: bool = False, prune: bool = True) -> Graph:
    """Freeze a qfx model (eval mode) into the exact integer graph.

    ``fold_thresholds``: a ``QBatchNorm1d/2d`` used only by a ``QReLU`` / ``QHardTanh``
    becomes, with it, one ``multithreshold`` node (integer comparisons on the BatchNorm's
    input, no multiplier) computing exactly the same codes, ties and negative scales included
    (a BatchNorm followed by a ``QSign`` always folds into a ``threshold``). Where a cast on the
    path could wrap (not monotone), the two layers are kept.

    ``prune``: drop the channels the graph provably does not need (a learned width of 0: a
    channel whose weights are all 0 and whose output is a constant, folded exactly into its
    consumers; see :func:`qfx.ir.prune.prune_channels`). The outputs are the same bits.

    ``example_input`` (a batch; a tuple of batches for a model with several inputs, each
    through its own QInput) fixes the tensor shapes. The model must start with a
    :class:`qfx.nn.QInput` and consist of qfx layers (``qfx.quantize_model`` converts plain
    torch.nn models).

    Example:
        >>> import qfx
        >>> from qfx.nn import QInput, QLinear
        >>> net = nn.Sequential(QInput(8), QLinear(4, 2))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(32, 4))
        >>> g = freeze(net, torch.randn(1, 4))
        >>> [n.op for n in g.nodes]
        ['input', 'dense']
        >>> from qfx.nn import QBatchNorm1d, QReLU
        >>> net = nn.Sequential(QInput(6), QBatchNorm1d(4), QReLU(act_width=3))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(32, 4))
        >>> [n.op for n in freeze(net, torch.randn(1, 4), fold_thresholds=True).nodes]
        ['input', 'multithreshold']
    """
    model.eval()
    tracer = QTracer()
    try:
        fx_graph = tracer.trace(model)
    except Exception as err:  # fx raises many types for untraceable Python
        raise ValueError(f"cannot trace {type(model).__name__} with torch.fx: {err}") from err
    gm = fx.GraphModule(tracer.root, fx_graph)
    recorder = _Recorder(gm)
    examples = (tuple(example_input) if isinstance(example_input, (tuple, list))
                else (example_input,))
    with torch.no_grad():
        recorder.run(*examples)
    graph = _Freezer(gm, recorder.values, fold_thresholds).run()
    if prune:
        graph = prune_channels(graph)
    graph.meta["model"] = type(model).__name__
    return graph
