"""(Q)ONNX importer rules for the ops-window family, registered into
:data:`qfx.frontends.onnx.IMPORTERS`: 1-D ``Conv`` (the IR ``conv1d``), ``LeakyRelu`` (a
power-of-two slope: the IR ``leaky_relu``), ``HardSigmoid`` / ``HardSwish`` (the IR
``hardsigmoid`` / ``hardswish`` with the float32 ``alpha`` as their fixed-point constant) and
``AveragePool`` with ``pads``, ``ceil_mode``, ``count_include_pad`` and ``auto_pad`` (the IR
``avgpool2d`` with one power-of-two divisor per output position), and the constant folding of the
shape arithmetic ``torch.onnx`` writes for ``F.pad`` (``ConstantOfShape``, ``Concat`` and
``Slice`` of constants, ``Cast``).

What each means exactly (between the ``Quant`` nodes, as :mod:`qfx.frontends.onnx` imports):

- ``LeakyRelu(alpha)``: ``x >= 0 ? x : alpha * x``; exact when alpha is ``2**-k`` (a shift),
  refused otherwise (one line naming the node and the slope).
- ``HardSigmoid(alpha, beta)``: ``clamp(alpha * x + beta, 0, 1)``; ``alpha`` (a float32
  attribute, e.g. PyTorch's ``float32(1/6)``) is a fixed-point number exactly, ``beta`` must be
  the IR's ``1/2``. ``HardSwish``: ``x * HardSigmoid(x)`` with ONNX's ``alpha = 1/6`` as float32
  (onnxruntime multiplies by that float) and ``beta = 1/2``. qfx computes with these constants
  exactly; the source in float32 (so a rounding can differ where float32 rounds a value across
  the next Quant's rounding boundary; the import-time check reports it).
- ``AveragePool``: PyTorch's ``avg_pool2d`` (windows clipped to the padded input, or to the
  input when ``count_include_pad=0``, ``ceil_mode`` windows that start inside the input or the
  left padding): exact when every divisor is a power of two, refused naming the divisor
  otherwise. Asymmetric pads, dilations and SAME padding that is not symmetric are refused.

Example:
    >>> from qfx.frontends.onnx import IMPORTERS
    >>> sorted(k for k in IMPORTERS if k in ("LeakyRelu", "HardSigmoid", "HardSwish"))
    ['HardSigmoid', 'HardSwish', 'LeakyRelu']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from qfx.fixed.fixed_type import FixedType
from qfx.frontends.onnx_importer import _FOLD, IMPORTERS, _Importer
from qfx.frontends.onnx_layers import _avgpool_node, _weighted
from qfx.frontends.onnx_layers import _conv as _conv2d_rule
from qfx.frontends.onnx_values import OnnxImportError, _attrs, _exact_fixed, _pair_from, _text
from qfx.ir.ops.activation import HardSigmoid
from qfx.ir.ops.pooling import AvgPool2d
from qfx.nn.pooling import avgpool_divisors, pool_output_size

__all__: list[str] = []


def _pow2_log(value: float) -> int | None:
    """k with value == 2**k, or None."""
    if not (math.isfinite(value) and value > 0):
        return None
    mant, exp = math.frexp(value)
    return exp - 1 if mant == 0.5 else None


def _union(types: list[FixedType]) -> FixedType:
    """The smallest format holding every value of each of ``types`` (no rounding)."""
    frac = max(t.frac_bits for t in types)
    lo = min(t.raw_min << (frac - t.frac_bits) for t in types)
    hi = max(t.raw_max << (frac - t.frac_bits) for t in types)
    return FixedType.for_raw_range(lo, hi, frac)


# ---------------------------------------------------------------------- 1-D Conv
def _conv(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """Conv on a (batch, C, L) tensor: the IR conv1d; any other Conv: the 2-D rule."""
    v = imp.values.get(node.input[0])
    if v is None or len(imp.shape(v)) != 2:
        _conv2d_rule(imp, node, idx)
        return
    where = imp.where(node)
    x = imp.dyn(node)
    w_raw, w_t = imp.fixed(node, 1, "weight")
    if w_raw.ndim != 3:
        raise OnnxImportError(f"{where}: a 1-D convolution's weight must be 3-D, got "
                              f"{w_raw.shape}")
    a = _attrs(node)
    cin, length = imp.shape(x)
    cout, cin_g, k = w_raw.shape
    stride = _pair_from(a.get("strides"), 1, 1)[0]
    dil = _pair_from(a.get("dilations"), 1, 1)[0]
    auto_pad = _text(a, "auto_pad", "NOTSET")
    pads = _pair_from(a.get("pads"), 0, 2)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = max((-(-length // stride) - 1) * stride + dil * (k - 1) + 1 - length, 0)
        pads = [total // 2, total - total // 2]
    elif auto_pad not in ("NOTSET", "VALID"):
        raise OnnxImportError(f"{where}: auto_pad={auto_pad} is not supported")
    if pads[0] != pads[1]:
        raise OnnxImportError(f"{where}: asymmetric pads {pads} are not supported (qfx's "
                              "conv1d pads both ends alike)")
    groups = int(a.get("group", 1))
    if "kernel_shape" in a and list(a["kernel_shape"]) != [k]:
        raise OnnxImportError(f"{where}: kernel_shape disagrees with the weight")
    if groups < 1 or cin % groups or cout % groups or cin_g * groups != cin:
        raise OnnxImportError(f"{where}: group={groups} does not fit {cin} input and {cout} "
                              "output channels")
    out_len = (length + 2 * pads[0] - dil * (k - 1) - 1) // stride + 1
    if out_len < 1:
        raise OnnxImportError(f"{where}: empty output")
    bias = None
    if len(node.input) > 2 and node.input[2]:
        b_raw, b_t = imp.fixed(node, 2, "bias")
        bias = (b_raw.reshape(-1), b_t)
    _weighted(imp, node, x, "conv1d", w_raw, w_t, bias, (cout, out_len),
              {"stride": stride, "padding": pads[0], "dilation": dil, "groups": groups})


# ---------------------------------------------------------------------- LeakyRelu
def _leaky_relu(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """LeakyRelu(alpha = 2**-k): x, or x shifted right by k (exact)."""
    alpha = float(_attrs(node).get("alpha", 0.01))
    k = _pow2_log(alpha)
    if k is None:
        raise OnnxImportError(f"{imp.where(node)}: slope alpha={alpha!r} is not a power of "
                              "two; qfx computes LeakyRelu exactly only with a slope 2**-k (a "
                              "shift), e.g. 0.125")
    x = imp.dyn(node)
    attrs: dict[str, Any] = {"shift": -k}
    acc = attrs["acc_type"] = imp.size_acc(node, "leaky_relu", [x], attrs, {})
    out = _union([imp.type(x), acc])  # the exact output: x (x >= 0) or x * 2**-shift
    imp.add_node(node, "leaky_relu", [x], out, imp.shape(x), attrs)


# ---------------------------------------------------------------------- HardSigmoid, HardSwish
#: ONNX HardSwish's fixed alpha (1/6) as the float32 onnxruntime multiplies by
_SIXTH = float(np.float32(1.0 / 6.0))


def _hard_gate(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """HardSigmoid(alpha, beta = 1/2) / HardSwish: the IR hardsigmoid / hardswish with the
    constant c = alpha (its float32 value, exactly)."""
    where = imp.where(node)
    a = _attrs(node)
    swish = node.op_type == "HardSwish"
    alpha = _SIXTH if swish else float(a.get("alpha", 0.2))
    beta = 0.5 if swish else float(a.get("beta", 0.5))
    if beta != 0.5:
        raise OnnxImportError(f"{where}: beta={beta!r}; qfx's hardsigmoid adds exactly 1/2 "
                              "(clamp(alpha * x + 1/2, 0, 1))")
    c_raw, c_t = _exact_fixed(np.array([alpha]), f"{where} alpha")
    x = imp.dyn(node)
    c_t = c_t.storage()
    op = "hardswish" if swish else "hardsigmoid"
    try:
        gate = HardSigmoid.size_gate(imp.type(x), c_t, int(c_raw[0]), where)
    except ValueError as err:
        raise OnnxImportError(str(err)) from None
    attrs: dict[str, Any] = {"scale_raw": int(c_raw[0]), "scale_type": c_t, "gate_type": gate}
    acc = attrs["acc_type"] = imp.size_acc(node, op, [x], attrs, {})
    imp.add_node(node, op, [x], acc, imp.shape(x), attrs)


# ---------------------------------------------------------------------- AveragePool
def _avgpool(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """AveragePool as PyTorch's avg_pool2d (see the module doc); whole windows without
    padding keep the plain rule (a shift of the window sum)."""
    where = imp.where(node)
    x = imp.dyn(node)
    if len(imp.shape(x)) != 3:
        raise OnnxImportError(f"{where}: only 2-D pooling on (batch, C, H, W) is supported")
    a = _attrs(node)
    k = [int(v) for v in a["kernel_shape"]]
    s = _pair_from(a.get("strides"), 1)
    if any(d != 1 for d in _pair_from(a.get("dilations"), 1)):
        raise OnnxImportError(f"{where}: dilated AveragePool is not supported")
    c, h, w = imp.shape(x)
    ceil = bool(a.get("ceil_mode", 0))
    include = bool(a.get("count_include_pad", 0))
    auto_pad = _text(a, "auto_pad", "NOTSET")
    pads = _pair_from(a.get("pads"), 0, 4)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max((-(-n // st) - 1) * st + kk - n, 0) for n, st, kk in zip((h, w), s, k,
                                                                                 strict=True)]
        if any(t % 2 for t in totals):
            raise OnnxImportError(f"{where}: auto_pad={auto_pad} pads {totals} cells, not the "
                                  "same on both sides; qfx pads symmetrically")
        pads, ceil = [totals[0] // 2, totals[1] // 2] * 2, False
    elif auto_pad not in ("NOTSET", "VALID"):
        raise OnnxImportError(f"{where}: auto_pad={auto_pad} is not supported")
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise OnnxImportError(f"{where}: asymmetric pads {pads} are not supported")
    p = pads[:2]
    if not any(p) and not ceil:
        _avgpool_node(imp, node, x, k, s)
        return
    if any(2 * pi > ki for pi, ki in zip(p, k, strict=True)):
        raise OnnxImportError(f"{where}: pads {pads} exceed half the kernel {k}")
    out = [pool_output_size(n, kk, st, pp, ceil) for n, kk, st, pp in zip((h, w), k, s, p,
                                                                           strict=True)]
    d = avgpool_divisors((h, w), (k[0], k[1]), (s[0], s[1]), (p[0], p[1]), ceil, include)
    logs = [_pow2_log(float(v)) for v in np.unique(d)]
    if None in logs:
        bad = int(np.unique(d)[logs.index(None)])
        raise OnnxImportError(f"{where}: a window's divisor {bad} is not a power of two, so "
                              "AveragePool's division is not exact in fixed point")
    attrs: dict[str, Any] = {"kernel": k, "stride": s,
                             "sum_type": AvgPool2d.sum_type(imp.type(x), k[0] * k[1]),
                             "padding": p, "ceil_mode": ceil}
    params: dict[str, np.ndarray] = {}
    if len(logs) == 1:
        attrs["shift"] = int(logs[0])
    else:
        e = np.log2(d).astype(np.int64)
        frac = int(e.max())
        params["recip"] = np.left_shift(1, frac - e).astype(np.int64)
        attrs["recip_type"] = FixedType.for_raw_range(int(params["recip"].min()),
                                                      int(params["recip"].max()), frac)
    acc = attrs["acc_type"] = imp.size_acc(node, "avgpool2d", [x], attrs, params)
    imp.add_node(node, "avgpool2d", [x], acc, (c, out[0], out[1]), attrs, params)


# ---------------------------------------------------------------------- constant folding
# the shape arithmetic torch.onnx writes for F.pad's pads (on plain integer constants)
def _plain(imp: _Importer, node: onnx.NodeProto) -> None:
    if any(i in imp.qconsts for i in node.input if i):
        raise ValueError("only plain constants (not Quant-ed ones) are folded by this op")


def _fold_constant_of_shape(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray
                            ) -> np.ndarray:
    _plain(imp, node)
    value = _attrs(node).get("value")
    fill = numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1)
    out = np.full([int(v) for v in np.asarray(arr).ravel()], fill[0], dtype=fill.dtype)
    return out.astype(np.float64) if out.dtype.kind == "f" else out


def _fold_concat(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    _plain(imp, node)
    parts = [np.asarray(imp.const(node, i)) for i in range(len(node.input))]
    return np.concatenate(parts, axis=int(_attrs(node).get("axis", 0)))


def _fold_slice(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    def ints(i: int) -> list[int] | None:
        v = imp.const(node, i)
        return None if v is None else [int(t) for t in np.asarray(v).ravel()]

    starts, ends = ints(1), ints(2)
    if starts is None or ends is None:
        raise ValueError("Slice needs starts and ends")
    axes = ints(3) or list(range(len(starts)))
    steps = ints(4) or [1] * len(starts)
    index = [slice(None)] * arr.ndim
    for ax, b, e, st in zip(axes, starts, ends, steps, strict=True):
        index[ax % arr.ndim] = slice(b, e, st)
    return arr[tuple(index)]


def _fold_cast(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    _plain(imp, node)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(int(_attrs(node)["to"]))
    out = np.asarray(arr).astype(dtype)
    return out.astype(np.float64) if out.dtype.kind == "f" else out


_FOLD.update({"ConstantOfShape": _fold_constant_of_shape, "Concat": _fold_concat,
              "Slice": _fold_slice, "Cast": _fold_cast})


IMPORTERS.update({"Conv": _conv, "LeakyRelu": _leaky_relu, "HardSigmoid": _hard_gate,
                  "HardSwish": _hard_gate, "AveragePool": _avgpool})
