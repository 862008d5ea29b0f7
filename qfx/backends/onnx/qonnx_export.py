"""``export_qonnx``: the frozen graph as QONNX (``Quant`` nodes with power-of-two scales), the
form FINN and hls4ml read, exact under the ``qonnx`` executor.

QONNX graphs are float32 and a ``Quant`` node computes ``round(clamp(x / scale))`` with one of
qonnx's rounding functions. That is exact when every value and every partial sum fits float32's
24-bit significand, so the exporter refuses (node name + reason) any edge, accumulator or
constant wider than 24 bits.

How each qfx cast maps (``W`` bits, LSB ``s = 2**(I-W)``, zero point 0):

- overflow AP_SAT -> ``narrow=0``; AP_SAT_SYM -> ``narrow=1`` (signed; unsigned SAT_SYM is SAT).
  AP_WRAP, AP_WRAP_SM and AP_SAT_ZERO have no QONNX equivalent (``Quant`` always clamps): they
  are exported only where the cast provably cannot overflow, and refused elsewhere.
- rounding AP_TRN -> ``FLOOR``, AP_RND_CONV -> ``ROUND`` (half to even), AP_TRN_ZERO -> ``DOWN``:
  one Quant. The tie-breaking modes are expressed exactly with a first Quant onto the half-LSB
  grid (``W+1`` bits, which keeps exactly the information the tie decision needs):

  * AP_RND (ties toward +inf): ``Quant(FLOOR, s/2, W+1)`` -> ``Add(s/2)`` -> ``Quant(FLOOR, s)``
    (``floor(y + 1/2) == floor((floor(2y) + 1) / 2)``; only FLOOR, so hls4ml reads it too);
  * AP_RND_MIN_INF: ``Quant(CEIL, s/2, W+1)`` -> ``Quant(FLOOR, s)``;
  * AP_RND_INF (ties away from zero): ``Quant(DOWN, s/2, W+1)`` -> ``Quant(UP, s)``;
  * AP_RND_ZERO (ties toward zero): ``Quant(UP, s/2, W+1)`` -> ``Quant(DOWN, s)``.

  Clamping before rounding (qonnx's order) gives the same result as ap_fixed's rounding then
  saturation, because the bounds are integers. A cast that needs no rounding uses one
  ``Quant(ROUND)``. hls4ml 1.3's QONNX reader accepts only ROUND and FLOOR: models using
  AP_RND_MIN_INF, AP_RND_INF, AP_RND_ZERO or AP_TRN_ZERO run in qonnx but not through that
  reader (use ``qfx.backends.hls4ml`` for hls4ml instead).
- A signed 1-bit cast is refused: qonnx reads a 1-bit signed Quant as bipolar (+-1).

Weights, biases and BatchNorm scale/shift are initializers followed by a ``Quant`` with the
constant's exact format (as Brevitas exports them); ``dense`` is MatMul (+ Add bias),
``batchnorm`` is Mul + Add, ``avgpool2d`` is AveragePool when the window area is ``2**shift``
and otherwise an all-ones depthwise Conv (the window sum) times the fixed-point reciprocal.

Binarized networks use ``BipolarQuant`` (scale 1: +1 where x >= 0, else -1), as FINN reads them:

- ``binary_dense`` / ``binary_conv2d``: +-1 weights as a float initializer -> BipolarQuant, then
  MatMul / Conv on the (already +-1) activations; the -1 padding is an explicit
  ``Pad(constant -1)`` before a Conv with zero pads. The integer dot products need no Quant;
  an optional per-channel ``scale`` is a Mul by a Quant-ed constant, then the output cast.
- ``threshold``: ``BipolarQuant(x - T)`` (direction +1), ``BipolarQuant(T - x)`` (direction
  -1), ``BipolarQuant((x - T) * D)`` for mixed directions D = +-1; a zero difference gives +1,
  matching ``a >= T`` / ``a <= T``. T is clamped to one step outside the input's range (same
  outputs); refused when some difference x - T needs more than 24 bits.
- ``thermometer``: ``Unsqueeze(x, 2) - thresholds -> BipolarQuant -> Reshape`` to (C * L, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from qfx.backends.onnx._common import (
    DEFAULT_OPSET,
    QONNX_DOMAIN,
    Builder,
    OnnxExportError,
    cast_needs,
    check_opset,
    edge_source,
    maxpool_pads,
    node_label,
    pow2,
    save_model_atomic,
)
from qfx.fixed.fixed_type import FixedType
from qfx.fixed.tables import table_codes
from qfx.ir.graph import Graph, Node, pair
from qfx.ir.ops import spec
from qfx.ir.ops.spatial import pads4
from qfx.ir.verify import check_exact

__all__ = ["export_qonnx", "build_qonnx_model", "QONNX_EMITTERS", "FLOAT32_EXACT_BITS"]

#: float32 holds integers up to 2**24 exactly.
FLOAT32_EXACT_BITS = 24
_MAX_FRAC = 100  # keep every scaled value inside float32's normal range

#: ap_fixed rounding -> (first Quant's mode on the half-LSB grid or None, Add 1/2?, final mode)
_ROUNDING: dict[str, tuple[str | None, bool, str]] = {
    "TRN": (None, False, "FLOOR"),
    "TRN_ZERO": (None, False, "DOWN"),
    "RND_CONV": (None, False, "ROUND"),
    "RND": ("FLOOR", True, "FLOOR"),
    "RND_MIN_INF": ("CEIL", False, "FLOOR"),
    "RND_INF": ("DOWN", False, "UP"),
    "RND_ZERO": ("UP", False, "DOWN"),
}


@dataclass
class QonnxContext:
    """What a QONNX emitter sees; ``shapes`` holds every tensor's shape (batch first)."""

    graph: Graph
    b: Builder
    batch: int
    tensors: dict[str, str] = field(default_factory=dict)

    def x(self, node: Node, i: int = 0) -> str:
        return self.tensors[node.inputs[i]]

    def shape(self, edge: str) -> tuple[int, ...]:
        return tuple(self.graph.edges[edge].shape)

    def op(self, op_type: str, inputs: Sequence[str], base: str, shape: Sequence[int], *,
           domain: str = "", **attrs: object) -> str:
        out = self.b.op(op_type, inputs, base, domain=domain, **attrs)
        self.b.annotate(out, list(shape))
        return out

    def quant(self, x: str, shape: Sequence[int], t: FixedType, mode: str, base: str, *,
              narrow: bool = False) -> str:
        """A QONNX Quant of ``x`` onto ``t``'s grid and width (zero point 0)."""
        b = self.b
        return self.op("Quant", [x, b.const(np.float32(t.lsb), f"{base}__scale"),
                                 b.const(np.float32(0.0), f"{base}__zeropt"),
                                 b.const(np.float32(t.width), f"{base}__bitwidth")],
                       f"{base}__quant", shape, domain=QONNX_DOMAIN, signed=int(t.signed),
                       narrow=int(narrow), rounding_mode=mode)

    def constant(self, raw: np.ndarray, t: FixedType, base: str, node: Node,
                 shape: Sequence[int] | None = None) -> str:
        """A weight-like constant: an exact float32 initializer, then its format's Quant."""
        _check_width(t, node, f"{base} constant")
        values = t.from_int(np.asarray(raw))
        if shape is not None:
            values = values.reshape(shape)
        init = self.b.const(values.astype(np.float32), f"{base}_init")
        self.b.annotate(init, list(values.shape))
        storage = t.storage()
        if t.signed and t.width == 1:  # qonnx reads 1-bit signed as bipolar: widen, same grid
            storage = FixedType(2, t.int_bits + 1, True)
        return self.quant(init, values.shape, storage, "ROUND", base)


QonnxEmitter = Callable[[QonnxContext, Node], tuple[str, FixedType | None]]
QONNX_EMITTERS: dict[str, QonnxEmitter] = {}


def _emits(*ops: str) -> Callable[[QonnxEmitter], QonnxEmitter]:
    def register(fn: QonnxEmitter) -> QonnxEmitter:
        for op in ops:
            QONNX_EMITTERS[op] = fn
        return fn
    return register


def _check_width(t: FixedType, node: Node, what: str) -> None:
    if t.width > FLOAT32_EXACT_BITS:
        raise OnnxExportError(f"{node_label(node)}: {what} {t.cpp()} is {t.width} bits wide; "
                              f"QONNX runs in float32, exact only up to {FLOAT32_EXACT_BITS} "
                              "bits (use export_onnx for a float64 model)")
    if max(abs(t.frac_bits), abs(t.int_bits)) > _MAX_FRAC:
        raise OnnxExportError(f"{node_label(node)}: {what} {t.cpp()} lies outside float32's "
                              "exponent range")


def _out_shape(ctx: QonnxContext, node: Node) -> list[int]:
    return [ctx.batch, *ctx.shape(node.output)]


@_emits("input")
def _input(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    return ctx.x(node), edge_source(ctx.graph, node)


@_emits("dense")
def _dense(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    w = ctx.constant(node.params["weight"].T, a["weight_type"], f"{node.name}_weight", node)
    y = ctx.op("MatMul", [ctx.x(node), w], f"{node.name}__matmul", _out_shape(ctx, node))
    if "bias" in node.params:
        bias = ctx.constant(node.params["bias"], a["bias_type"], f"{node.name}_bias", node)
        y = ctx.op("Add", [y, bias], f"{node.name}__acc", _out_shape(ctx, node))
    return y, a["acc_type"]


@_emits("conv2d")
def _conv2d(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    (sh, sw), (ph, pw), (dh, dw) = pair(a["stride"]), pair(a["padding"]), pair(a["dilation"])
    w_raw = node.params["weight"]
    ins = [ctx.x(node), ctx.constant(w_raw, a["weight_type"], f"{node.name}_weight", node)]
    if "bias" in node.params:
        ins.append(ctx.constant(node.params["bias"], a["bias_type"], f"{node.name}_bias", node))
    y = ctx.op("Conv", ins, f"{node.name}__acc", _out_shape(ctx, node),
               kernel_shape=list(w_raw.shape[2:]), strides=[sh, sw], pads=[ph, pw, ph, pw],
               dilations=[dh, dw], group=int(a["groups"]))
    return y, a["acc_type"]


@_emits("batchnorm")
def _batchnorm(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    x_shape = tuple(ctx.shape(node.inputs[0]))
    # The constants have the tensor's full shape, batch axis included, (1, C, H, W): qonnx's
    # channels-last conversion (hls4ml's ONNX route) then transposes them as they are (a
    # lower rank gets an Unsqueeze, which hls4ml's converter refuses), and hls4ml's
    # scale/shift layer takes a (H, W, C) constant (not a (1, 1, 1, C) one).
    def full(raw: np.ndarray) -> np.ndarray:
        per = np.asarray(raw).reshape((-1,) + (1,) * (len(x_shape) - 1))
        return np.broadcast_to(per, x_shape)

    shape = (1, *x_shape)
    scale = ctx.constant(full(node.params["scale"]), a["scale_type"], f"{node.name}_scale",
                         node, shape)
    shift = ctx.constant(full(node.params["shift"]), a["shift_type"], f"{node.name}_shift",
                         node, shape)
    y = ctx.op("Mul", [ctx.x(node), scale], f"{node.name}__mul", _out_shape(ctx, node))
    return ctx.op("Add", [y, shift], f"{node.name}__acc", _out_shape(ctx, node)), a["acc_type"]


@_emits("relu")
def _relu(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    return (ctx.op("Relu", [ctx.x(node)], f"{node.name}__relu", _out_shape(ctx, node)),
            edge_source(ctx.graph, node))


@_emits("hardtanh")
def _hardtanh(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a, b = node.attrs, ctx.b
    t: FixedType = a["clamp_type"]
    _check_width(t, node, "clamp type")
    lo, hi = (np.float32(np.ldexp(float(a[k]), -t.frac_bits)) for k in ("min_raw", "max_raw"))
    y = ctx.op("Clip", [ctx.x(node), b.const(lo, f"{node.name}__min"),
                        b.const(hi, f"{node.name}__max")], f"{node.name}__clip",
               _out_shape(ctx, node))
    return y, (None if edge_source(ctx.graph, node) is None else t)


@_emits("add")
def _add(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    return (ctx.op("Add", [ctx.x(node, 0), ctx.x(node, 1)], f"{node.name}__acc",
                   _out_shape(ctx, node)), node.attrs["acc_type"])


@_emits("maxpool2d")
def _maxpool2d(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"])
    dh, dw = pair(a["dilation"])
    _, h, w = ctx.shape(node.inputs[0])
    _, oh, ow = ctx.shape(node.output)
    pads = maxpool_pads(node, (h, w), (oh, ow))
    y = ctx.op("MaxPool", [ctx.x(node)], f"{node.name}__maxpool", _out_shape(ctx, node),
               kernel_shape=[kh, kw], strides=[sh, sw], pads=pads, dilations=[dh, dw])
    return y, edge_source(ctx.graph, node)


@_emits("avgpool2d")
def _avgpool2d(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"])
    c, h, w = ctx.shape(node.inputs[0])
    _check_width(a["sum_type"], node, "window sum")
    shape = _out_shape(ctx, node)
    area = kh * kw
    (ph, pw), (oh, ow) = pair(a.get("padding", 0)), shape[2:]
    bottom, right = (max((oh - 1) * sh + kh - h - ph, 0), max((ow - 1) * sw + kw - w - pw, 0))
    pads = [ph, pw, bottom, right]  # padding and ceil_mode's end cells add zeros to the sum
    if "recip" not in node.params and pow2(int(a["shift"])) == float(area) and not any(pads):
        if (kh, kw) == (h, w) and shape[2:] == [1, 1]:
            y = ctx.op("GlobalAveragePool", [ctx.x(node)], f"{node.name}__avg", shape)
        else:
            y = ctx.op("AveragePool", [ctx.x(node)], f"{node.name}__avg", shape,
                       kernel_shape=[kh, kw], strides=[sh, sw])
        return y, a["acc_type"]
    # window sum as an all-ones depthwise convolution, then the fixed-point factor
    ones = FixedType(2, 2, False)  # holds the raw value 1 at LSB 1
    kernel = ctx.constant(np.ones((c, 1, kh, kw), dtype=np.int64), ones, f"{node.name}_ones",
                          node)
    s = ctx.op("Conv", [ctx.x(node), kernel], f"{node.name}__sum", shape,
               kernel_shape=[kh, kw], strides=[sh, sw], group=c, pads=pads)
    if "recip" in node.params:  # one factor, or one per output position
        r = node.params["recip"]
        factor = ctx.constant(r.reshape(-1) if r.size == 1 else r.reshape(oh, ow),
                              a["recip_type"], f"{node.name}_recip", node)
    else:
        shift = int(a["shift"])
        factor = ctx.constant(np.array([1]), FixedType(2, 2 - shift, False),
                              f"{node.name}_factor", node)
    return ctx.op("Mul", [s, factor], f"{node.name}__acc", shape), a["acc_type"]


@_emits("flatten")
def _flatten(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    return (ctx.op("Flatten", [ctx.x(node)], f"{node.name}__flatten", _out_shape(ctx, node),
                   axis=1), edge_source(ctx.graph, node))


# ---- concat, mul, upsample (Resize nearest), pad (ops-graph): Concat / Resize / Pad move
# ---- values (exact in float32 whatever the width); Mul's product is checked to fit 24 bits
@_emits("concat")
def _concat(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    return (ctx.op("Concat", [ctx.x(node, 0), ctx.x(node, 1)], f"{node.name}__concat",
                   _out_shape(ctx, node), axis=1), node.attrs["acc_type"])


@_emits("mul")
def _mul(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    g = ctx.x(node, 1)
    x_shape, g_shape = ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1])
    if len(g_shape) < len(x_shape):  # a [C] gate over [C, H, W]: (N, C) -> (N, C, 1, 1)
        axes = list(range(len(g_shape) + 1, len(x_shape) + 1))
        g = ctx.op("Unsqueeze", [g, ctx.b.int_const(axes, f"{node.name}__axes")],
                   f"{node.name}__gate", [ctx.batch, *g_shape, *([1] * len(axes))])
    return (ctx.op("Mul", [ctx.x(node, 0), g], f"{node.name}__acc", _out_shape(ctx, node)),
            node.attrs["acc_type"])


@_emits("upsample")
def _upsample(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    sh, sw = pair(node.attrs["scale"])
    scales = ctx.b.const(np.array([1.0, 1.0, sh, sw], dtype=np.float32), f"{node.name}__scales")
    y = ctx.op("Resize", [ctx.x(node), "", scales], f"{node.name}__resize",
               _out_shape(ctx, node), mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return y, edge_source(ctx.graph, node)


@_emits("pad")
def _pad(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    t, left, bottom, r = pads4(node)
    b = ctx.b
    y = ctx.op("Pad", [ctx.x(node), b.int_const([0, 0, t, left, 0, 0, bottom, r],
                                                 f"{node.name}__pads"),
                       b.const(np.float32(node.attrs["value"]), f"{node.name}__value")],
               f"{node.name}__pad", _out_shape(ctx, node), mode="constant")
    return y, edge_source(ctx.graph, node)


# ---- ops-window: conv1d and the exact piecewise-linear activations
@_emits("conv1d")
def _conv1d(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    w_raw = node.params["weight"]
    ins = [ctx.x(node), ctx.constant(w_raw, a["weight_type"], f"{node.name}_weight", node)]
    if "bias" in node.params:
        ins.append(ctx.constant(node.params["bias"], a["bias_type"], f"{node.name}_bias", node))
    p = int(a["padding"])
    y = ctx.op("Conv", ins, f"{node.name}__acc", _out_shape(ctx, node),
               kernel_shape=[int(w_raw.shape[2])], strides=[int(a["stride"])], pads=[p, p],
               dilations=[int(a["dilation"])], group=int(a["groups"]))
    return y, a["acc_type"]


@_emits("leaky_relu")
def _leaky_relu(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    # the standard op with a 2**-k slope (an exact shift in float32): it re-imports as the same
    # IR leaky_relu
    a = node.attrs
    src = edge_source(ctx.graph, node)
    out_t = None if src is None else FixedType.add(src, a["acc_type"])
    if out_t is not None:
        _check_width(out_t, node, "leaky_relu result")
    return ctx.op("LeakyRelu", [ctx.x(node)], f"{node.name}__leaky", _out_shape(ctx, node),
                  alpha=float(2.0 ** -int(a["shift"]))), out_t


def _qonnx_gate(ctx: QonnxContext, node: Node) -> str:
    """clamp(x * c + 1/2, 0, 1), exact in float32 (the gate type is at most 24 bits)."""
    a, shape, name, b = node.attrs, _out_shape(ctx, node), node.name, ctx.b
    _check_width(a["gate_type"], node, "gate")
    c = ctx.constant(np.array([int(a["scale_raw"])]), a["scale_type"], f"{name}_scale", node)
    g = ctx.op("Mul", [ctx.x(node), c], f"{name}__mul", shape)
    g = ctx.op("Add", [g, b.const(np.float32(0.5), f"{name}__half")], f"{name}__add", shape)
    return ctx.op("Clip", [g, b.const(np.float32(0.0), f"{name}__zero"),
                           b.const(np.float32(1.0), f"{name}__one")], f"{name}__gate", shape)


@_emits("hardsigmoid")
def _hardsigmoid(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    return _qonnx_gate(ctx, node), node.attrs["acc_type"]


@_emits("hardswish")
def _hardswish(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    _check_width(node.attrs["acc_type"], node, "hardswish product")
    g = _qonnx_gate(ctx, node)
    return (ctx.op("Mul", [ctx.x(node), g], f"{node.name}__acc", _out_shape(ctx, node)),
            node.attrs["acc_type"])


# ---- binarized networks: +-1 weights and activations as BipolarQuant (scale 1), the form
# ---- FINN reads; every product is +-1 and every sum an integer of at most 24 bits: exact
_BINARY = FixedType(2, 2)  # holds -1 and +1


def _bipolar(ctx: QonnxContext, x: str, shape: Sequence[int], base: str) -> str:
    """BipolarQuant(x, scale=1): +1 where x >= 0, else -1."""
    one = ctx.b.const(np.float32(1.0), f"{base}__unit_scale")
    return ctx.op("BipolarQuant", [x, one], f"{base}__bipolar", shape, domain=QONNX_DOMAIN)


def _bipolar_weight(ctx: QonnxContext, w: np.ndarray, base: str) -> str:
    """+-1 weights as Brevitas exports them: a float initializer, then BipolarQuant."""
    init = ctx.b.const(np.ascontiguousarray(w, dtype=np.float32), f"{base}_init")
    ctx.b.annotate(init, list(w.shape))
    return _bipolar(ctx, init, w.shape, base)


def _binary_scale(ctx: QonnxContext, node: Node, y: str, rank: int) -> tuple[str, FixedType]:
    """The integer dot products (checked to fit float32), times the optional scale."""
    a = node.attrs
    n = int(a["fan_in"])
    _check_width(FixedType.for_raw_range(-n, n, 0), node, "popcount dot product")
    if "scale" not in node.params:
        return y, a["acc_type"]
    scale = ctx.constant(node.params["scale"], a["scale_type"], f"{node.name}_scale", node,
                         (-1,) + (1,) * (rank - 1))
    return ctx.op("Mul", [y, scale], f"{node.name}__acc", _out_shape(ctx, node)), a["acc_type"]


@_emits("binary_dense")
def _binary_dense(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    w = _bipolar_weight(ctx, node.params["weight"].T, f"{node.name}_weight")
    y = ctx.op("MatMul", [ctx.x(node), w], f"{node.name}__dot", _out_shape(ctx, node))
    return _binary_scale(ctx, node, y, 1)


@_emits("binary_conv2d")
def _binary_conv2d(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a, b, name = node.attrs, ctx.b, node.name
    if int(a.get("pad_value", -1)) != -1:
        raise OnnxExportError(f"{node_label(node)}: pad_value must be -1, got {a['pad_value']}")
    (sh, sw), (ph, pw), (dh, dw) = pair(a["stride"]), pair(a["padding"]), pair(a["dilation"])
    w_raw = node.params["weight"]
    w = _bipolar_weight(ctx, w_raw, f"{name}_weight")
    x = ctx.x(node)
    if ph or pw:  # -1 padding (bit 0) as an explicit Pad: Conv's own pads would insert 0
        c, h, wd = ctx.shape(node.inputs[0])
        x = ctx.op("Pad", [x, b.int_const([0, 0, ph, pw, 0, 0, ph, pw], f"{name}__pads"),
                           b.const(np.float32(-1.0), f"{name}__pad_value")], f"{name}__pad",
                   [ctx.batch, c, h + 2 * ph, wd + 2 * pw], mode="constant")
    y = ctx.op("Conv", [x, w], f"{name}__dot", _out_shape(ctx, node),
               kernel_shape=list(w_raw.shape[2:]), strides=[sh, sw], pads=[0, 0, 0, 0],
               dilations=[dh, dw], group=int(a["groups"]))
    return _binary_scale(ctx, node, y, 3)


def _difference_fits(node: Node, x_t: FixedType, t_raw: np.ndarray) -> None:
    """x - T must be exact in float32: every difference on x's grid within 24 bits."""
    lo, hi = x_t.raw_min - int(t_raw.max()), x_t.raw_max - int(t_raw.min())
    _check_width(FixedType.for_raw_range(min(lo, 0), max(hi, 0), x_t.frac_bits), node,
                 "difference x - threshold")


@_emits("threshold")
def _threshold(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    """BipolarQuant(x - T) (direction +1), BipolarQuant(T - x) (direction -1), or
    BipolarQuant((x - T) * D) when the directions D differ between channels: +1 exactly where
    the IR's ``a >= T`` / ``a <= T`` holds (a difference of 0, even -0.0, gives +1)."""
    x_t = edge_source(ctx.graph, node)
    assert x_t is not None  # build_qonnx_model refuses thresholds on graph inputs
    t_t: FixedType = node.attrs["threshold_type"]
    if t_t.frac_bits != x_t.frac_bits:
        raise OnnxExportError(f"{node_label(node)}: threshold_type {t_t.cpp()} is not on the "
                              f"input's grid ({x_t.cpp()})")
    # a threshold beyond the input range acts like one a step outside it: same outputs
    t_raw = np.clip(node.params["threshold"], x_t.raw_min - 1, x_t.raw_max + 1)
    _difference_fits(node, x_t, t_raw)
    in_shape = ctx.shape(node.inputs[0])
    shape = (-1,) + (1,) * (len(in_shape) - 1)
    full = _out_shape(ctx, node)
    thr = ctx.b.const(np.ldexp(t_raw.astype(np.float64), -x_t.frac_bits)
                      .astype(np.float32).reshape(shape), f"{node.name}_threshold")
    d = node.params["direction"]
    x = ctx.x(node)
    if (d > 0).all():
        y = ctx.op("Sub", [x, thr], f"{node.name}__diff", full)
    elif (d < 0).all():
        y = ctx.op("Sub", [thr, x], f"{node.name}__diff", full)
    else:
        y = ctx.op("Sub", [x, thr], f"{node.name}__diff", full)
        sign = ctx.b.const(d.astype(np.float32).reshape(shape), f"{node.name}_direction")
        y = ctx.op("Mul", [y, sign], f"{node.name}__oriented", full)
    return _bipolar(ctx, y, full, node.name), _BINARY


@_emits("thermometer")
def _thermometer(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    """Unsqueeze(x, 2) - thresholds -> BipolarQuant -> Reshape to (C * L, ...): bit k of
    channel c is +1 exactly where x_c >= thresholds[k]."""
    b, name = ctx.b, node.name
    x_t = edge_source(ctx.graph, node)
    assert x_t is not None
    if node.attrs["threshold_type"].frac_bits != x_t.frac_bits:
        raise OnnxExportError(f"{node_label(node)}: threshold_type is not on the input's grid")
    t_raw = np.clip(node.params["thresholds"], x_t.raw_min, x_t.raw_max + 1)
    _difference_fits(node, x_t, t_raw)
    in_shape = ctx.shape(node.inputs[0])
    levels = int(node.attrs["levels"])
    rest = list(in_shape[1:])
    x = ctx.op("Unsqueeze", [ctx.x(node), b.int_const([2], f"{name}__axis2")], f"{name}__x",
               [ctx.batch, in_shape[0], 1, *rest])
    thr = b.const(np.ldexp(t_raw.astype(np.float64), -x_t.frac_bits).astype(np.float32)
                  .reshape((levels,) + (1,) * len(rest)), f"{name}_thresholds")
    full = [ctx.batch, in_shape[0], levels, *rest]
    bits = _bipolar(ctx, ctx.op("Sub", [x, thr], f"{name}__diff", full), full, name)
    y = ctx.op("Reshape", [bits, b.int_const([0, in_shape[0] * levels, *rest], f"{name}__shape")],
               f"{name}__flat", _out_shape(ctx, node))
    return y, _BINARY


# ---------------------------------------------------------------------- multithreshold
@_emits("multithreshold")
def _multithreshold(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    """FINN's ``MultiThreshold(x, T)`` (domain qonnx.custom_op.general, count of ``x >= T``,
    integer ``out_scale`` / ``out_bias`` and ``out_dtype`` the levels' integer type), then
    ``Mul(2**-out_frac)`` onto the output grid. Falling channels (direction -1) compare
    ``-x >= -T`` (``x <= T``): a ``Mul`` by the per-channel sign D first, thresholds ``D * T``
    (each row sorted again; the count does not depend on the order)."""
    from qfx.ir.ops.multithreshold import level_range

    x_t = edge_source(ctx.graph, node)
    assert x_t is not None  # build_qonnx_model refuses it on graph inputs
    a, name = node.attrs, node.name
    if a["threshold_type"].frac_bits != x_t.frac_bits:
        raise OnnxExportError(f"{node_label(node)}: threshold_type is not on the input's grid")
    t_raw = np.clip(node.params["thresholds"], x_t.raw_min - 1, x_t.raw_max + 1)
    _difference_fits(node, x_t, t_raw)
    d = node.params["direction"]
    full = _out_shape(ctx, node)
    x = ctx.x(node)
    if (d < 0).any():
        rank = len(ctx.shape(node.inputs[0]))
        sign = ctx.b.const(d.astype(np.float32).reshape((-1,) + (1,) * (rank - 1)),
                           f"{name}_direction")
        x = ctx.op("Mul", [x, sign], f"{name}__oriented", full)
        t_raw = np.sort(t_raw * d[:, None], axis=1)
    thr = ctx.b.const(np.ldexp(t_raw.astype(np.float64), -x_t.frac_bits).astype(np.float32),
                      f"{name}_thresholds")
    lo, hi = level_range(node)
    levels = FixedType.for_raw_range(lo, hi, 0)
    _check_width(levels, node, "levels")
    dtype = f"{'INT' if levels.signed else 'UINT'}{levels.width}"
    y = ctx.op("MultiThreshold", [x, thr], f"{name}__count", full, domain=QONNX_DOMAIN,
               out_dtype=dtype, out_scale=float(a["out_scale"]), out_bias=float(a["out_bias"]),
)
    frac = int(a["out_frac"])
    if frac:
        y = ctx.op("Mul", [y, ctx.b.const(np.float32(pow2(-frac)), f"{name}__lsb")],
                   f"{name}__level", full)
    return y, FixedType.for_raw_range(lo, hi, frac)


# ---- table activations: standard Sigmoid / Tanh / Exp (and softmax decomposed) between Quants
#: IR table op -> the standard ONNX operator whose float32 result the Quant casts
_TABLE_ONNX_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp"}


def _check_float32_table(node: Node, onnx_op: str, in_t: FixedType, table: np.ndarray,
                         table_t: FixedType, negate: bool = False) -> None:
    """The Quant after a standard float32 ``onnx_op`` reproduces the IR's exact table only if
    onnxruntime's float32 result casts onto ``table_t`` like the exact value, at every code:
    run it on all of them (``negate``: the op reads -x) and refuse by node and code if not."""
    from qfx.backends.onnx.export import run_onnx

    x = in_t.from_int(table_codes(in_t))
    vi_in = helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(x)])
    vi_out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(x)])
    nodes = [helper.make_node("Neg", ["x"], ["nx"])] if negate else []
    nodes.append(helper.make_node(onnx_op, ["nx" if negate else "x"], ["y"]))
    model = helper.make_model(helper.make_graph(nodes, "table_check", [vi_in], [vi_out]),
                              opset_imports=[helper.make_opsetid("", 17)])
    y = run_onnx(model, x.astype(np.float32))[0].astype(np.float64)
    raw = table_t.to_int(y)
    bad = np.flatnonzero(raw != table)
    if bad.size:
        i = int(bad[0])
        raise OnnxExportError(
            f"{node_label(node)}: float32 {onnx_op} at input {float(x[i])!r} casts to raw "
            f"{int(raw[i])} of {table_t.cpp()}, the exact table holds {int(table[i])}: QONNX's "
            "standard operator cannot reproduce this table exactly (export_onnx emits the exact "
            "table)")


@_emits("sigmoid", "tanh", "exp")
def _table_op(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    _check_width(a["index_type"], node, "input type")
    _check_float32_table(node, _TABLE_ONNX_OPS[node.op], a["index_type"], node.params["table"],
                         a["table_type"])
    y = ctx.op(_TABLE_ONNX_OPS[node.op], [ctx.x(node)], f"{node.name}__{node.op}",
               _out_shape(ctx, node))
    return y, None  # any float: the output Quant rounds it like the exact table


@_emits("softmax")
def _softmax(ctx: QonnxContext, node: Node) -> tuple[str, FixedType | None]:
    """max, exp(-(max - x)) -> Quant(exp_type), ReduceSum (exact), Reciprocal -> Quant
    (recip_type), Mul (exact): qfx's softmax with its two declared roundings (a standard
    Softmax node would skip them and compute another function)."""
    a, b, name, x = node.attrs, ctx.b, node.name, ctx.x(node)
    shape = _out_shape(ctx, node)
    one = [shape[0], 1, *shape[2:]]
    e_t, r_t = a["exp_type"], a["recip_type"]
    _check_float32_table(node, "Exp", a["diff_type"], node.params["exp_table"], e_t, negate=True)
    _check_float32_table(node, "Reciprocal", a["sum_type"], node.params["recip_table"], r_t)
    axis = b.int_const([1], f"{name}__axis")
    taps = [ctx.op("Slice", [x, b.int_const([c], f"{name}__start"),
                             b.int_const([c + 1], f"{name}__end"), axis], f"{name}__chan", one)
            for c in range(shape[1])]
    m = taps[0] if len(taps) == 1 else ctx.op("Max", taps, f"{name}__max", one)
    neg = ctx.op("Sub", [x, m], f"{name}__neg_diff", shape)  # exact: -(max - x)
    e = _quant_cast(ctx, node, ctx.op("Exp", [neg], f"{name}__exp", shape), None, e_t, shape,
                    f"{name}_exp")
    s = ctx.op("ReduceSum", [e, axis], f"{name}__sum", one, keepdims=1)
    r = _quant_cast(ctx, node, ctx.op("Reciprocal", [s], f"{name}__recip", one), None, r_t,
                    one, f"{name}_recip")
    return ctx.op("Mul", [e, r], f"{name}__acc", shape), a["acc_type"]


#: ops whose result needs no Quant when it already has the output's values (+-1, or the
#: integer dot products of an unscaled binary layer)
_CAST_IF_NEEDED = frozenset({"threshold", "thermometer", "binary_dense", "binary_conv2d"})


def _skip_cast(ctx: QonnxContext, node: Node, src: FixedType | None) -> bool:
    if spec(node.op).same_format:
        return True
    if node.op not in _CAST_IF_NEEDED or src is None or "scale" in node.params:
        return False
    t = ctx.graph.edges[node.output].type
    _check_width(t, node, "output type")
    return cast_needs(src, t) == (False, False)


def _emit_cast(ctx: QonnxContext, node: Node, x: str, src: FixedType | None) -> str:
    """The Quant node(s) computing the node's output cast exactly (see the module docstring)."""
    return _quant_cast(ctx, node, x, src, ctx.graph.edges[node.output].type,
                       _out_shape(ctx, node), node.name)


def _quant_cast(ctx: QonnxContext, node: Node, x: str, src: FixedType | None, t: FixedType,
                shape: list[int], base: str) -> str:
    """The Quant node(s) casting ``x`` (of format ``src``, None: any float) onto ``t``."""
    _check_width(t, node, "output type")
    if t.signed and t.width == 1:
        raise OnnxExportError(f"{node_label(node)}: a 1-bit signed output ({t.cpp()}) has no "
                              "QONNX Quant equivalent (qonnx reads it as bipolar +-1)")
    need_round, need_ovf = cast_needs(src, t)
    if need_ovf and t.overflow not in ("SAT", "SAT_SYM"):
        raise OnnxExportError(
            f"{node_label(node)}: overflow mode AP_{t.overflow} of {t.cpp()} has no QONNX "
            "equivalent (Quant always saturates) and this cast can overflow; use AP_SAT or "
            "AP_SAT_SYM here, or export_onnx for the standard-ops model")
    narrow = t.overflow == "SAT_SYM" and t.signed and t.width > 1
    if not need_round:
        return ctx.quant(x, shape, t, "ROUND", base, narrow=narrow)
    first, add_half, final = _ROUNDING[t.rounding]
    if first is not None:
        if t.width + 1 > FLOAT32_EXACT_BITS:
            raise OnnxExportError(f"{node_label(node)}: rounding mode AP_{t.rounding} needs a "
                                  f"{t.width + 1}-bit half-LSB step, beyond float32's "
                                  f"{FLOAT32_EXACT_BITS} bits")
        half = FixedType(t.width + 1, t.int_bits, t.signed)
        x = ctx.quant(x, shape, half, first, f"{base}_half")
        if add_half:
            x = ctx.op("Add", [x, ctx.b.const(np.float32(half.lsb), f"{base}__half_lsb")],
                       f"{base}__tie", shape)
    return ctx.quant(x, shape, t, final, base, narrow=narrow)


def build_qonnx_model(graph: Graph, *, opset: int = DEFAULT_OPSET,
                      batch_size: int = 1) -> onnx.ModelProto:
    """The QONNX model of ``graph`` in memory (float32, fixed batch size).

    Example:
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.fixed import FixedType
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), FixedType(8, 3, rounding="RND_CONV", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> [n.op_type for n in build_qonnx_model(g).graph.node]
        ['Quant']
    """
    opset = check_opset(opset)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OnnxExportError(f"batch_size must be a positive integer, got {batch_size!r}")
    check_exact(graph)
    b = Builder(TensorProto.FLOAT)
    ctx = QonnxContext(graph, b, batch_size)
    for name in graph.edges:
        ctx.tensors[name] = b.name(name)
    for node in graph.nodes:
        emit = QONNX_EMITTERS.get(node.op)
        if emit is None:
            raise OnnxExportError(f"{node_label(node)}: the QONNX exporter has no exact "
                                  f"translation of op {node.op!r} (supported: "
                                  f"{', '.join(sorted(QONNX_EMITTERS))})")
        src_in = edge_source(graph, node)
        if src_in is None and node.op not in ("input", "maxpool2d", "flatten", "relu",
                                              *_TABLE_ONNX_OPS):
            raise OnnxExportError(f"{node_label(node)} reads a graph input directly: start the "
                                  "graph with an 'input' cast")
        for t in [v for v in node.attrs.values() if isinstance(v, FixedType)]:
            _check_width(t, node, "intermediate type")
        acc, src = emit(ctx, node)
        result = acc if _skip_cast(ctx, node, src) else _emit_cast(ctx, node, acc, src)
        _rename(ctx, result, ctx.tensors[node.output], node)
    computed = set(graph.inputs) | {n.output for n in graph.nodes}
    for e in graph.outputs:
        if e not in computed:
            raise OnnxExportError(f"graph output {e!r} is never computed by a node")
    inputs = [helper.make_tensor_value_info(ctx.tensors[e], TensorProto.FLOAT,
                                            [batch_size, *graph.edges[e].shape])
              for e in graph.inputs]
    outputs = [helper.make_tensor_value_info(ctx.tensors[e], TensorProto.FLOAT,
                                             [batch_size, *graph.edges[e].shape])
               for e in graph.outputs]
    for vi, e in zip(outputs, graph.outputs, strict=True):
        vi.doc_string = f"values of {graph.edges[e].type.cpp()}"
    io = {vi.name for vi in inputs + outputs}
    inits = {t.name for t in b.initializers}
    value_info = [vi for n, vi in b.value_info.items() if n not in io and n not in inits]
    g = helper.make_graph(b.nodes, str(graph.meta.get("model", "qfx_model")), inputs, outputs,
                          initializer=b.initializers, value_info=value_info,
                          doc_string="qfx frozen fixed-point graph as QONNX")
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                                helper.make_opsetid(QONNX_DOMAIN, 1)],
                              producer_name="qfx", doc_string="exported by qfx.export_qonnx")
    onnx.checker.check_model(model)
    return model


def _rename(ctx: QonnxContext, tensor: str, edge_name: str, node: Node) -> None:
    """Give the node's final tensor the IR edge's name (Identity when it is another edge)."""
    b = ctx.b
    last = b.nodes[-1] if b.nodes else None
    edges = set(ctx.tensors.values())
    if last is not None and last.output[0] == tensor and tensor not in edges and \
            not any(tensor in n.input for n in b.nodes):
        last.output[0] = edge_name
        last.name = edge_name
        vi = b.value_info.pop(tensor)
        vi.name = edge_name
        vi.doc_string = f"qfx {ctx.graph.edges[node.output].type.cpp()}"
        b.value_info[edge_name] = vi
    elif tensor != edge_name:
        b.nodes.append(helper.make_node("Identity", [tensor], [edge_name], name=edge_name))
        b.annotate(edge_name, _out_shape(ctx, node))


def export_qonnx(graph: Graph, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET,
                 batch_size: int = 1) -> Path:
    """Write ``graph`` as a QONNX model (``Quant`` nodes, power-of-two scales, zero points 0).

    Exact under ``qonnx.core.onnx_exec.execute_onnx`` for float32 inputs: every mode that has
    no QONNX equivalent is either expressed exactly with extra Quant/Add nodes or refused with
    the node's name (see the module docstring). The batch dimension is fixed to
    ``batch_size`` (FINN expects 1). The file is written atomically.

    Example:
        >>> import os, tempfile
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.fixed import FixedType
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), FixedType(8, 3, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> export_qonnx(g, os.path.join(tempfile.mkdtemp(), "m.qonnx.onnx")).suffix
        '.onnx'
    """
    return save_model_atomic(build_qonnx_model(graph, opset=opset, batch_size=batch_size), path)
