"""``export_onnx``: the frozen graph as a standard-operator ONNX model that onnxruntime runs
bit-exactly (float64 tensors, every cast composed from exact operators).

Why each operator is exact in float64 (values are fixed-point numbers, every accumulator of the
frozen graph is at most 53 bits wide, see :func:`qfx.ir.check_exact`):

- products of two edge values fit their accumulator, so they are exact doubles, and every
  partial sum of a dot product or window sum lies inside the accumulator's range (its bounds
  are sums of same-signed terms), so any order of additions and any FMA use is exact;
- onnxruntime's CPU Conv has no float64 kernel, so ``conv2d`` is built from Pad, strided Slices
  and one batched MatMul (an im2col): the same dot products as above;
- Relu, Max/Min (clamps), MaxPool, Flatten move values without arithmetic; casts: see
  :mod:`qfx.backends.onnx.exact_cast`.

Every op of the IR has one emitter in ``EMITTERS``; an op without one is refused with its node
name (new IR ops are added by registering an emitter).
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
    Builder,
    OnnxExportError,
    check_opset,
    edge_source,
    maxpool_pads,
    node_label,
    pow2,
    save_model_atomic,
)
from qfx.backends.onnx.exact_cast import emit_cast
from qfx.fixed.fixed_type import FixedType
from qfx.ir.graph import Graph, Node, pair
from qfx.ir.ops import spec
from qfx.ir.ops.spatial import pads4
from qfx.ir.verify import check_exact

__all__ = ["export_onnx", "build_onnx_model", "run_onnx", "EMITTERS"]

#: IR ops whose output keeps the input's values and format (the executor casts nothing).


@dataclass
class EmitContext:
    """What an emitter sees: the graph, the builder, and the ONNX tensor of every IR edge."""

    graph: Graph
    b: Builder
    tensors: dict[str, str] = field(default_factory=dict)

    def x(self, node: Node, i: int = 0) -> str:
        return self.tensors[node.inputs[i]]

    def shape(self, edge: str) -> tuple[int, ...]:
        return tuple(self.graph.edges[edge].shape)


#: An emitter appends the node's full-precision computation and returns (tensor, its format);
#: the format is what the output cast starts from (None: any double).
Emitter = Callable[[EmitContext, Node], tuple[str, FixedType | None]]
EMITTERS: dict[str, Emitter] = {}


def _emits(*ops: str) -> Callable[[Emitter], Emitter]:
    def register(fn: Emitter) -> Emitter:
        for op in ops:
            EMITTERS[op] = fn
        return fn
    return register


@_emits("input")
def _input(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    return ctx.x(node), edge_source(ctx.graph, node)


@_emits("dense")
def _dense(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a, b = node.attrs, ctx.b
    w = a["weight_type"].from_int(node.params["weight"])
    y = b.op("MatMul", [ctx.x(node), b.const(w.T.copy(), f"{node.name}__weight")],
             f"{node.name}__matmul")
    if "bias" in node.params:
        bias = a["bias_type"].from_int(node.params["bias"])
        y = b.op("Add", [y, b.const(bias, f"{node.name}__bias")], f"{node.name}__acc")
    return y, a["acc_type"]


def _im2col_conv(ctx: EmitContext, node: Node, x: str, w: np.ndarray, *, pad_value: float = 0.0
                 ) -> str:
    """``torch.nn.functional.conv2d`` of x with the float64 weights w (no bias), exactly:
    Pad, one strided Slice per kernel tap, and a batched MatMul over (C/groups * KH * KW)."""
    a, b, name = node.attrs, ctx.b, node.name
    cout, cin_g, kh, kw = w.shape
    groups = int(a["groups"])
    (sh, sw), (ph, pw), (dh, dw) = pair(a["stride"]), pair(a["padding"]), pair(a["dilation"])
    _, oh, ow = ctx.shape(node.output)
    if ph or pw:
        x = b.op("Pad", [x, b.int_const([0, 0, ph, pw, 0, 0, ph, pw], f"{name}__pads"),
                         b.const(pad_value, f"{name}__pad_value")], f"{name}__pad")
    k = kh * kw
    if k == 1 and sh == 1 and sw == 1:
        patches = x  # (N, Cin, OH, OW) already
    else:
        cols = []
        for i in range(kh):
            for j in range(kw):
                s = b.op("Slice", [x, b.int_const([i * dh, j * dw], f"{name}__start"),
                                   b.int_const([i * dh + (oh - 1) * sh + 1,
                                                j * dw + (ow - 1) * sw + 1], f"{name}__end"),
                                   b.int_const([2, 3], f"{name}__axes"),
                                   b.int_const([sh, sw], f"{name}__steps")], f"{name}__tap")
                cols.append(b.op("Unsqueeze", [s, b.int_const([2], f"{name}__axis2")],
                                 f"{name}__col"))
        patches = cols[0] if k == 1 else b.op("Concat", cols, f"{name}__im2col", axis=2)
    # (N, Cin, K, OH, OW) -> (N, G, Cin/G*K, OH*OW); weight (G, Cout/G, Cin/G*K)
    p = b.op("Reshape", [patches, b.int_const([0, groups, cin_g * k, oh * ow], f"{name}__pshape")],
             f"{name}__patches")
    wg = w.reshape(groups, cout // groups, cin_g * k)
    y = b.op("MatMul", [b.const(wg, f"{name}__weight"), p], f"{name}__matmul")
    return b.op("Reshape", [y, b.int_const([0, cout, oh, ow], f"{name}__oshape")],
                f"{name}__conv")


@_emits("conv2d")
def _conv2d(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a, b = node.attrs, ctx.b
    w = a["weight_type"].from_int(node.params["weight"])
    y = _im2col_conv(ctx, node, ctx.x(node), w)
    if "bias" in node.params:
        bias = a["bias_type"].from_int(node.params["bias"]).reshape(w.shape[0], 1, 1)
        y = b.op("Add", [y, b.const(bias, f"{node.name}__bias")], f"{node.name}__acc")
    return y, a["acc_type"]


# ---- binarized networks: every value is -1/+1, so the products are exact and the dot
# ---- products are the integers 2*popcount(XNOR) - fan_in that the IR defines
_BINARY = FixedType(2, 2)  # holds -1 and +1


def _binary_scale(ctx: EmitContext, node: Node, y: str, rank: int) -> tuple[str, FixedType]:
    a = node.attrs
    if "scale" not in node.params:
        return y, a["acc_type"]
    scale = a["scale_type"].from_int(node.params["scale"]).reshape((-1,) + (1,) * (rank - 1))
    return (ctx.b.op("Mul", [y, ctx.b.const(scale, f"{node.name}__scale")], f"{node.name}__acc"),
            a["acc_type"])


@_emits("binary_dense")
def _binary_dense(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    w = node.params["weight"].astype(np.float64)
    y = ctx.b.op("MatMul", [ctx.x(node), ctx.b.const(w.T.copy(), f"{node.name}__weight")],
                 f"{node.name}__dot")
    return _binary_scale(ctx, node, y, 1)


@_emits("binary_conv2d")
def _binary_conv2d(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    pad_value = float(node.attrs.get("pad_value", -1))
    if pad_value != -1.0:
        raise OnnxExportError(f"{node_label(node)}: pad_value must be -1, got {pad_value}")
    y = _im2col_conv(ctx, node, ctx.x(node), node.params["weight"].astype(np.float64),
                     pad_value=-1.0)
    return _binary_scale(ctx, node, y, 3)


def _sign_of(ctx: EmitContext, node: Node, positive: str) -> str:
    """+1 where ``positive`` holds, else -1."""
    b = ctx.b
    return b.op("Where", [positive, b.const(1.0, f"{node.name}__one"),
                          b.const(-1.0, f"{node.name}__minus_one")], f"{node.name}__sign")


@_emits("threshold")
def _threshold(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    b, name = ctx.b, node.name
    rank = len(ctx.shape(node.inputs[0]))
    shape = (-1,) + (1,) * (rank - 1)
    t = node.attrs["threshold_type"].from_int(node.params["threshold"]).reshape(shape)
    up = (node.params["direction"] > 0).reshape(shape)
    thr = b.const(t, f"{name}__threshold")
    x = ctx.x(node)
    # (up and x >= T) or (down and x <= T); onnxruntime has no boolean Where
    ge = b.op("And", [b.const(up, f"{name}__up", dtype=np.bool_),
                      b.op("GreaterOrEqual", [x, thr], f"{name}__ge")], f"{name}__rising")
    le = b.op("And", [b.const(~up, f"{name}__down", dtype=np.bool_),
                      b.op("LessOrEqual", [x, thr], f"{name}__le")], f"{name}__falling")
    pos = b.op("Or", [ge, le], f"{name}__test")
    return _sign_of(ctx, node, pos), _BINARY


@_emits("thermometer")
def _thermometer(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    b, name = ctx.b, node.name
    in_shape = ctx.shape(node.inputs[0])
    levels = int(node.attrs["levels"])
    t = node.attrs["threshold_type"].from_int(node.params["thresholds"])
    x = b.op("Unsqueeze", [ctx.x(node), b.int_const([2], f"{name}__axis2")], f"{name}__x")
    thr = b.const(t.reshape((1, 1, levels) + (1,) * (len(in_shape) - 1)), f"{name}__levels")
    bits = _sign_of(ctx, node, b.op("GreaterOrEqual", [x, thr], f"{name}__ge"))
    y = b.op("Reshape", [bits, b.int_const([0, in_shape[0] * levels, *in_shape[1:]],
                                           f"{name}__shape")], f"{name}__flat")
    return y, _BINARY


@_emits("batchnorm")
def _batchnorm(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a, b = node.attrs, ctx.b
    rank = len(ctx.shape(node.inputs[0]))
    shape = (-1,) + (1,) * (rank - 1)
    scale = a["scale_type"].from_int(node.params["scale"]).reshape(shape)
    shift = a["shift_type"].from_int(node.params["shift"]).reshape(shape)
    y = b.op("Mul", [ctx.x(node), b.const(scale, f"{node.name}__scale")], f"{node.name}__mul")
    y = b.op("Add", [y, b.const(shift, f"{node.name}__shift")], f"{node.name}__acc")
    return y, a["acc_type"]


@_emits("relu")
def _relu(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    # max(x, 0) stays in the input's format (every format holds 0)
    return ctx.b.op("Relu", [ctx.x(node)], f"{node.name}__relu"), edge_source(ctx.graph, node)


@_emits("hardtanh")
def _hardtanh(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a, b = node.attrs, ctx.b
    t: FixedType = a["clamp_type"]
    lo, hi = (float(np.ldexp(float(a[k]), -t.frac_bits)) for k in ("min_raw", "max_raw"))
    y = b.clamp(ctx.x(node), b.const(lo, f"{node.name}__min"),
                b.const(hi, f"{node.name}__max"), f"{node.name}__clip")
    src = edge_source(ctx.graph, node)
    return y, (None if src is None else t)


@_emits("add")
def _add(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    y = ctx.b.op("Add", [ctx.x(node, 0), ctx.x(node, 1)], f"{node.name}__acc")
    srcs = [edge_source(ctx.graph, node, i) for i in range(2)]
    return y, (None if None in srcs else node.attrs["acc_type"])


@_emits("maxpool2d")
def _maxpool2d(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"])
    dh, dw = pair(a["dilation"])
    _, h, w = ctx.shape(node.inputs[0])
    _, oh, ow = ctx.shape(node.output)
    pads = maxpool_pads(node, (h, w), (oh, ow))
    y = ctx.b.op("MaxPool", [ctx.x(node)], f"{node.name}__maxpool", kernel_shape=[kh, kw],
                 strides=[sh, sw], pads=pads, dilations=[dh, dw])
    return y, edge_source(ctx.graph, node)


@_emits("avgpool2d")
def _avgpool2d(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a, b, name = node.attrs, ctx.b, node.name
    (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"])
    _, h, w = ctx.shape(node.inputs[0])
    _, oh, ow = ctx.shape(node.output)
    x = ctx.x(node)
    ph, pw = pair(a.get("padding", 0))
    bottom, right = ((oh - 1) * sh + kh - h - ph, (ow - 1) * sw + kw - w - pw)
    if ph or pw or bottom > 0 or right > 0:  # padding (and ceil_mode's end cells) add zeros
        pads = [0, 0, ph, pw, 0, 0, max(bottom, 0), max(right, 0)]
        x = b.op("Pad", [x, b.int_const(pads, f"{name}__pads"), b.const(0.0, f"{name}__zero")],
                 f"{name}__pad")
        h, w = h + ph + max(bottom, 0), w + pw + max(right, 0)
    if (kh, kw) == (h, w) and (oh, ow) == (1, 1):
        s = b.op("ReduceSum", [x, b.int_const([2, 3], f"{name}__axes")], f"{name}__sum",
                 keepdims=1)
    else:
        taps = [b.op("Slice", [x, b.int_const([i, j], f"{name}__start"),
                               b.int_const([i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1],
                                           f"{name}__end"),
                               b.int_const([2, 3], f"{name}__axes"),
                               b.int_const([sh, sw], f"{name}__steps")], f"{name}__tap")
                for i in range(kh) for j in range(kw)]
        s = taps[0] if len(taps) == 1 else b.op("Sum", taps, f"{name}__sum")
    if "recip" in node.params and node.params["recip"].size > 1:  # one per output position
        factor = a["recip_type"].from_int(node.params["recip"]).astype(np.float64)
    elif "recip" in node.params:
        factor = float(a["recip_type"].from_int(node.params["recip"]).reshape(-1)[0])
    else:
        factor = pow2(-int(a["shift"]))
    y = b.op("Mul", [s, b.const(factor, f"{name}__scale")], f"{name}__acc")
    return y, (None if edge_source(ctx.graph, node) is None else a["acc_type"])


@_emits("flatten")
def _flatten(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    return (ctx.b.op("Flatten", [ctx.x(node)], f"{node.name}__flatten", axis=1),
            edge_source(ctx.graph, node))


# ---------------------------------------------------------------------- multithreshold
@_emits("multithreshold")
def _multithreshold(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    """count = ReduceSum(Cast((up and x >= T) or (down and x <= T))) over the K levels, then
    count * scale + bias on the 2**-out_frac grid: comparisons and small integers, exact."""
    from qfx.ir.ops.multithreshold import level_range

    b, name, a = ctx.b, node.name, node.attrs
    rank = len(ctx.shape(node.inputs[0]))
    t_raw = node.params["thresholds"]
    k = t_raw.shape[1]
    t = a["threshold_type"].from_int(t_raw).reshape((-1,) + (1,) * (rank - 1) + (k,))
    up = (node.params["direction"] > 0).reshape((-1,) + (1,) * rank)
    x = b.op("Unsqueeze", [ctx.x(node), b.int_const([-1], f"{name}__last")], f"{name}__x")
    thr = b.const(t, f"{name}__thresholds")
    ge = b.op("And", [b.const(up, f"{name}__up", dtype=np.bool_),
                      b.op("GreaterOrEqual", [x, thr], f"{name}__ge")], f"{name}__rising")
    le = b.op("And", [b.const(~up, f"{name}__down", dtype=np.bool_),
                      b.op("LessOrEqual", [x, thr], f"{name}__le")], f"{name}__falling")
    hit = b.op("Cast", [b.op("Or", [ge, le], f"{name}__hit")], f"{name}__bits",
               to=TensorProto.DOUBLE)
    count = b.op("ReduceSum", [hit, b.int_const([-1], f"{name}__levels")], f"{name}__count",
                 keepdims=0)
    frac = int(a["out_frac"])
    y = b.op("Mul", [count, b.const(pow2(-frac) * int(a["out_scale"]), f"{name}__scale")],
             f"{name}__scaled")
    y = b.op("Add", [y, b.const(pow2(-frac) * int(a["out_bias"]), f"{name}__bias")],
             f"{name}__level")
    lo, hi = level_range(node)
    return y, FixedType.for_raw_range(lo, hi, frac)
# ---------------------------------------------------------------------- concat, mul, upsample, pad
# (ops-graph)
@_emits("concat")
def _concat(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    # values moved, not computed: exact; they are values of acc_type (every input's format)
    y = ctx.b.op("Concat", [ctx.x(node, 0), ctx.x(node, 1)], f"{node.name}__concat", axis=1)
    srcs = [edge_source(ctx.graph, node, i) for i in range(2)]
    return y, (None if None in srcs else node.attrs["acc_type"])


@_emits("mul")
def _mul(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    # the product of two fixed-point values fits acc_type (<= 53 bits): an exact double
    b, name = ctx.b, node.name
    g = ctx.x(node, 1)
    x_shape, g_shape = ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1])
    if len(g_shape) < len(x_shape):  # a [C] gate over [C, H, W]: (N, C) -> (N, C, 1, 1)
        axes = list(range(len(g_shape) + 1, len(x_shape) + 1))
        g = b.op("Unsqueeze", [g, b.int_const(axes, f"{name}__axes")], f"{name}__gate")
    y = b.op("Mul", [ctx.x(node, 0), g], f"{name}__acc")
    srcs = [edge_source(ctx.graph, node, i) for i in range(2)]
    return y, (None if None in srcs else node.attrs["acc_type"])


@_emits("upsample")
def _upsample(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    # onnxruntime has no float64 Resize: nearest upsampling by integer factors is the same
    # move of values as Unsqueeze -> Expand -> Reshape (no arithmetic)
    b, name = ctx.b, node.name
    sh, sw = pair(node.attrs["scale"])
    c, oh, ow = ctx.shape(node.output)
    u = b.op("Unsqueeze", [ctx.x(node), b.int_const([3, 5], f"{name}__axes")], f"{name}__u")
    e = b.op("Expand", [u, b.int_const([1, 1, 1, sh, 1, sw], f"{name}__rep")], f"{name}__e")
    y = b.op("Reshape", [e, b.int_const([0, c, oh, ow], f"{name}__shape")], f"{name}__up")
    return y, edge_source(ctx.graph, node)


@_emits("pad")
def _pad(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    b, name = ctx.b, node.name
    t, left, bottom, r = pads4(node)
    y = b.op("Pad", [ctx.x(node), b.int_const([0, 0, t, left, 0, 0, bottom, r], f"{name}__pads"),
                     b.const(float(node.attrs["value"]), f"{name}__value")], f"{name}__pad",
             mode="constant")
    return y, edge_source(ctx.graph, node)


# ---------------------------------------------------------------------- ops-window
@_emits("leaky_relu")
def _leaky_relu(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    # the standard op with a 2**-k slope: x * 2**-k is an exact shift in float, so it is
    # re-imported as the same IR leaky_relu
    src = edge_source(ctx.graph, node)
    y = ctx.b.op("LeakyRelu", [ctx.x(node)], f"{node.name}__leaky",
                 alpha=pow2(-int(node.attrs["shift"])))
    return y, (None if src is None else FixedType.add(src, node.attrs["acc_type"]))


def _hard_gate(ctx: EmitContext, node: Node) -> str:
    """clamp(x * c + 1/2, 0, 1): the product and the sum are exact (the gate type holds them)."""
    a, b, name = node.attrs, ctx.b, node.name
    c = float(np.ldexp(float(a["scale_raw"]), -a["scale_type"].frac_bits))
    g = b.op("Mul", [ctx.x(node), b.const(c, f"{name}__scale")], f"{name}__mul")
    g = b.op("Add", [g, b.const(0.5, f"{name}__half")], f"{name}__add")
    return b.clamp(g, b.const(0.0, f"{name}__zero"), b.const(1.0, f"{name}__one"),
                   f"{name}__gate")


@_emits("hardsigmoid")
def _hardsigmoid(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    return _hard_gate(ctx, node), node.attrs["acc_type"]


@_emits("hardswish")
def _hardswish(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    g = _hard_gate(ctx, node)
    return ctx.b.op("Mul", [ctx.x(node), g], f"{node.name}__acc"), node.attrs["acc_type"]


@_emits("conv1d")
def _conv1d(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    """Pad, one strided Slice per tap, one batched MatMul (the im2col of conv2d, in 1-D)."""
    a, b, name = node.attrs, ctx.b, node.name
    w = a["weight_type"].from_int(node.params["weight"])
    cout, cin_g, k = w.shape
    groups, s, p, d = (int(a[key]) for key in ("groups", "stride", "padding", "dilation"))
    _, out_len = ctx.shape(node.output)
    x = ctx.x(node)
    if p:
        x = b.op("Pad", [x, b.int_const([0, 0, p, 0, 0, p], f"{name}__pads"),
                         b.const(0.0, f"{name}__pad_value")], f"{name}__pad")
    cols = [b.op("Unsqueeze", [b.op("Slice", [x, b.int_const([i * d], f"{name}__start"),
                                              b.int_const([i * d + (out_len - 1) * s + 1],
                                                          f"{name}__end"),
                                              b.int_const([2], f"{name}__axes"),
                                              b.int_const([s], f"{name}__steps")],
                                         f"{name}__tap"),
                                    b.int_const([2], f"{name}__axis2")], f"{name}__col")
            for i in range(k)]
    patches = cols[0] if k == 1 else b.op("Concat", cols, f"{name}__im2col", axis=2)
    # (N, Cin, K, L) -> (N, G, Cin/G*K, L); weight (G, Cout/G, Cin/G*K)
    pt = b.op("Reshape", [patches, b.int_const([0, groups, cin_g * k, out_len],
                                               f"{name}__pshape")], f"{name}__patches")
    y = b.op("MatMul", [b.const(w.reshape(groups, cout // groups, cin_g * k), f"{name}__weight"),
                        pt], f"{name}__matmul")
    y = b.op("Reshape", [y, b.int_const([0, cout, out_len], f"{name}__oshape")], f"{name}__conv")
    if "bias" in node.params:
        bias = a["bias_type"].from_int(node.params["bias"]).reshape(-1, 1)
        y = b.op("Add", [y, b.const(bias, f"{name}__bias")], f"{name}__acc")
    return y, a["acc_type"]


# ---- table activations (sigmoid, tanh, exp, softmax): the IR's tables as Gather constants
def _gather_table(ctx: EmitContext, x: str, in_t: FixedType, table: np.ndarray,
                  table_t: FixedType, name: str) -> str:
    """``table[raw bits of x]``: the raw value x * 2**F (an exact integer), moved to [0, 2**W)
    for a signed type (+ 2**W, then an exact fmod), cast to int64 and gathered."""
    b = ctx.b
    raw = b.op("Mul", [x, b.const(pow2(in_t.frac_bits), f"{name}__scale")], f"{name}__raw")
    if in_t.signed:
        span = b.const(pow2(in_t.width), f"{name}__span")
        raw = b.op("Mod", [b.op("Add", [raw, span], f"{name}__shifted"), span],
                   f"{name}__bits", fmod=1)
    idx = b.op("Cast", [raw], f"{name}__index", to=TensorProto.INT64)
    values = b.const(table_t.from_int(table), f"{name}__table")
    return b.op("Gather", [values, idx], f"{name}__lookup", axis=0)


@_emits("sigmoid", "tanh", "exp")
def _table_op(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a = node.attrs
    y = _gather_table(ctx, ctx.x(node), a["index_type"], node.params["table"],
                      a["table_type"], node.name)
    return y, a["table_type"]


@_emits("softmax")
def _softmax(ctx: EmitContext, node: Node) -> tuple[str, FixedType | None]:
    a, b, name, x = node.attrs, ctx.b, node.name, ctx.x(node)
    channels = ctx.shape(node.inputs[0])[0]
    axis = b.int_const([1], f"{name}__axis")
    taps = [b.op("Slice", [x, b.int_const([c], f"{name}__start"),
                           b.int_const([c + 1], f"{name}__end"), axis], f"{name}__chan")
            for c in range(channels)]
    m = taps[0] if channels == 1 else b.op("Max", taps, f"{name}__max")
    d = b.op("Sub", [m, x], f"{name}__diff")  # exact: diff_type holds max - x
    e = _gather_table(ctx, d, a["diff_type"], node.params["exp_table"], a["exp_type"],
                      f"{name}__exp")
    s = b.op("ReduceSum", [e, axis], f"{name}__sum", keepdims=1)  # exact: sum_type
    r = _gather_table(ctx, s, a["sum_type"], node.params["recip_table"], a["recip_type"],
                      f"{name}__recip")
    return b.op("Mul", [e, r], f"{name}__acc"), a["acc_type"]


#: ops that only compare or move values: exact on any double, even straight from a graph input
_ANY_DOUBLE_OPS = frozenset({"input", "relu", "hardtanh", "maxpool2d", "flatten", "threshold",
                             "thermometer", "upsample", "pad"})


def _sum_source_ok(node: Node, src: FixedType | None) -> None:
    """Arithmetic is exact on fixed-point values only: refuse it straight after a graph input."""
    if src is None and node.op not in _ANY_DOUBLE_OPS:
        raise OnnxExportError(f"{node_label(node)} reads a graph input directly: its arithmetic "
                              "is only exact on fixed-point values (start the graph with an "
                              "'input' cast)")


def build_onnx_model(graph: Graph, *, opset: int = DEFAULT_OPSET,
                     batch: int | str = "N") -> onnx.ModelProto:
    """The ONNX model of ``graph`` (float64 tensors, standard operators only), in memory.

    ``batch`` is the first dimension of every tensor: a symbolic name or a fixed size.

    Example:
        >>> import numpy as np
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.fixed import FixedType
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), FixedType(16, 8)))
        >>> g.add_edge(Edge("q", (2,), FixedType(4, 2, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> m = build_onnx_model(g)
        >>> run_onnx(m, np.array([[0.3, 9.0]]))[0].tolist()
        [[0.25, 1.75]]
    """
    opset = check_opset(opset)
    check_exact(graph)
    b = Builder(TensorProto.DOUBLE)
    ctx = EmitContext(graph, b)
    for name in graph.edges:  # claim every edge's (sanitized, unique) name first
        ctx.tensors[name] = b.name(name)
    for e in graph.inputs:
        if e not in graph.edges:
            raise OnnxExportError(f"graph input {e!r} has no edge")
    doc = {name: graph.edges[name].type.cpp() for name in graph.edges}
    for node in graph.nodes:
        emit = EMITTERS.get(node.op)
        if emit is None:
            raise OnnxExportError(f"{node_label(node)}: the ONNX exporter has no exact "
                                  f"translation of op {node.op!r} (supported: "
                                  f"{', '.join(sorted(EMITTERS))})")
        missing = [i for i in node.inputs if i not in ctx.tensors or
                   (i not in graph.inputs and graph.producer(i) is None)]
        if missing:
            raise OnnxExportError(f"{node_label(node)} reads {', '.join(missing)} before it is "
                                  "computed")
        _sum_source_ok(node, edge_source(ctx.graph, node))
        acc, src = emit(ctx, node)
        out_t = graph.edges[node.output].type
        result = acc if spec(node.op).same_format else emit_cast(b, acc, out_t, src, node.name)
        _bind(b, result, ctx.tensors[node.output], set(ctx.tensors.values()))
        b.annotate(ctx.tensors[node.output], [batch, *graph.edges[node.output].shape],
                   doc=f"qfx {out_t.cpp()}")
    computed = set(graph.inputs) | {n.output for n in graph.nodes}
    for e in graph.outputs:
        if e not in computed:
            raise OnnxExportError(f"graph output {e!r} is never computed by a node")
    inputs = [helper.make_tensor_value_info(ctx.tensors[e], TensorProto.DOUBLE,
                                            [batch, *graph.edges[e].shape]) for e in graph.inputs]
    for vi, e in zip(inputs, graph.inputs, strict=True):
        vi.doc_string = f"any float64 values; cast to {graph.edges[e].type.cpp()} by the model"
    outputs = []
    for e in graph.outputs:
        vi = helper.make_tensor_value_info(ctx.tensors[e], TensorProto.DOUBLE,
                                           [batch, *graph.edges[e].shape])
        vi.doc_string = f"values of {doc[e]} (exact float64)"
        outputs.append(vi)
    out_names = {vi.name for vi in outputs}
    value_info = [vi for n, vi in b.value_info.items() if n not in out_names]
    g = helper.make_graph(b.nodes, str(graph.meta.get("model", "qfx_model")), inputs, outputs,
                          initializer=b.initializers, value_info=value_info,
                          doc_string="qfx frozen fixed-point graph; every value is exact")
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="qfx", doc_string="exported by qfx.export_onnx")
    onnx.checker.check_model(model, full_check=True)
    return model


def _bind(b: Builder, tensor: str, edge_name: str, edge_tensors: set[str]) -> None:
    """Make ``edge_name`` the ONNX tensor holding ``tensor``'s value (renaming the producing
    node's output when ``tensor`` is a fresh intermediate, else through an Identity)."""
    last = b.nodes[-1] if b.nodes else None
    if last is not None and last.output[0] == tensor and tensor not in edge_tensors and \
            not any(tensor in n.input for n in b.nodes):
        last.output[0] = edge_name
        last.name = edge_name
        b.value_info.pop(tensor, None)
    elif tensor != edge_name:
        b.nodes.append(helper.make_node("Identity", [tensor], [edge_name], name=edge_name))


def export_onnx(graph: Graph, path: str | os.PathLike[str], *,
                opset: int = DEFAULT_OPSET) -> Path:
    """Write ``graph`` as a standard-ops ONNX model that onnxruntime runs bit-exactly.

    Tensors are float64; every fixed-point cast (all ap_fixed rounding and overflow modes,
    saturation bits included) is composed from exact operators, so
    ``run_onnx(path, x)[0] == qfx.run_graph(graph, x).outputs[0]`` element for element.
    Inputs are any float64 values (the model applies the input cast). An op without an exact
    translation raises :class:`OnnxExportError` naming the node. The file is written
    atomically.

    Example:
        >>> import numpy as np, os, tempfile, qfx
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), qfx.FixedType(16, 8)))
        >>> g.add_edge(Edge("q", (2,), qfx.FixedType(4, 2, rounding="RND_CONV")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> p = export_onnx(g, os.path.join(tempfile.mkdtemp(), "m.onnx"))
        >>> x = np.array([[0.375, 2.5]])
        >>> bool((run_onnx(p, x)[0] == qfx.run_graph(g, x).outputs[0]).all())
        True
    """
    return save_model_atomic(build_onnx_model(graph, opset=opset), path)


def run_onnx(model: onnx.ModelProto | str | os.PathLike[str],
             x: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run an exported model with onnxruntime's CPU provider; returns every output.

    ``x`` is one array per graph input (a single array for single-input graphs), cast to the
    model's input element type.

    Example:
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.fixed import FixedType
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (1,), FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (1,), FixedType(3, 3, overflow="WRAP")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> run_onnx(build_onnx_model(g), np.array([[5.0], [-6.0]]))[0].ravel().tolist()
        [-3.0, 2.0]
    """
    import onnxruntime as ort

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else \
        Path(model).read_bytes()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    xs = [x] if isinstance(x, np.ndarray) else list(x)
    ins = sess.get_inputs()
    if len(xs) != len(ins):
        raise ValueError(f"the model takes {len(ins)} input(s), got {len(xs)}")
    feeds = {}
    for port, arr in zip(ins, xs, strict=True):
        dtype = np.float32 if port.type == "tensor(float)" else np.float64
        feeds[port.name] = np.ascontiguousarray(arr, dtype=dtype)
    return sess.run(None, feeds)
