"""(Q)ONNX importer rules for element-wise casts and arithmetic, registered into
:data:`qfx.frontends.onnx.IMPORTERS`: ``Quant`` (one exact cast, or an exactly quantized
constant), QONNX ``Trunc`` (the saturating cast it computes), ``Constant``, ``Identity`` /
``Dropout`` (aliases), ``Mul`` / ``Div`` by a constant, ``Add`` and ``Sub`` of a constant (the IR
``batchnorm``, an added constant folded into the producer's bias or shift), and ``Mul`` / ``Add``
of two computed tensors (the IR ``mul`` / ``add``). Kept together because they share the
per-channel constant helpers and each maps one ONNX node onto one IR node element by element.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import FLOAT64_EXACT_BITS
from qfx.frontends.onnx_importer import IMPORTERS, _Importer, _Value
from qfx.frontends.onnx_layers import _weighted
from qfx.frontends.onnx_thresholds import _threshold_chain
from qfx.frontends.onnx_values import OnnxImportError, _align, _attrs, _exact_fixed, _pow2_exponent

__all__: list[str] = []


# ---------------------------------------------------------------------- Quant, Trunc
def _quant(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    x = node.input[0]
    if x in imp.consts or x in imp.qconsts:
        imp.quant_const(node)
    else:
        imp.quant_dynamic(node, idx)


def _trunc(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """QONNX Trunc (v2: x, scale, zero_point, input_bit_width, output_scale,
    output_bit_width), exactly as qonnx executes it: ``y = round_half_even(x / scale)``,
    then ``y / (output_scale / scale)`` clamped to the output bit width and rounded with
    ``rounding_mode``, times ``output_scale``. Clamping before or after rounding to an integer
    is the same (rounding is monotone and keeps integers), so the second step is one
    saturating ap_fixed cast; the first is a round-to-even cast onto the scale's grid, needed
    only when x has finer bits than that grid."""
    where = imp.where(node)
    if len(node.input) != 6:
        raise OnnxImportError(f"{where}: Trunc takes (x, scale, zero_point, input_bit_width, "
                              "output_scale, output_bit_width) (QONNX Trunc v2)")
    x = imp.dyn(node)
    try:
        scale, zp, _, out_scale, out_bits = (imp.const(node, i) for i in range(1, 6))
    except OnnxImportError as err:
        raise OnnxImportError(f"{err} (Trunc's scales, zero point and bit widths must be "
                              "constants)") from None
    if np.any(np.asarray(zp) != 0):
        raise OnnxImportError(f"{where}: zero point {np.asarray(zp).ravel()[:4]} is not 0")
    e_in, e_out = (_pow2_exponent(v, where) for v in (scale, out_scale))
    bits = np.asarray(out_bits, dtype=np.float64).ravel()
    if e_in.size != 1 or e_out.size != 1 or bits.size != 1 or bits[0] != int(bits[0]) or \
            not 1 <= bits[0] <= FLOAT64_EXACT_BITS:
        raise OnnxImportError(f"{where}: needs one scale, one output scale and one integer "
                              f"output bit width (1..{FLOAT64_EXACT_BITS})")
    a = _attrs(node)
    mode = a.get("rounding_mode", b"FLOOR")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    x_t, grid = imp.type(x), -int(e_in.ravel()[0])
    if x_t.frac_bits > grid:  # round(x / scale): half to even onto the scale's grid
        k = x_t.frac_bits - grid
        t1 = FixedType.for_raw_range(x_t.raw_min >> k, -((-x_t.raw_max) >> k), grid)
        x = imp.cast(x, t1.replace(rounding="RND_CONV"), node, node.output[0] + "_grid")
    params = (e_out, int(bits[0]), bool(a.get("signed", 1)), bool(a.get("narrow", 0)), mode)
    t = imp.cast_type(node, imp.type(x), params)
    imp.cast(x, t, node, node.output[0])


# ---------------------------------------------------------------------- constants, aliases
def _constant(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    a = _attrs(node)
    if "value" not in a:
        raise OnnxImportError(f"{imp.where(node)}: only Constant(value=tensor) is supported")
    arr = numpy_helper.to_array(a["value"])
    imp.consts[node.output[0]] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr


def _alias(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise OnnxImportError(f"{imp.where(node)}: Dropout's mask output is not supported")
    src = node.input[0]
    if src in imp.consts:
        imp.consts[node.output[0]] = imp.consts[src]
    elif src in imp.qconsts:
        imp.qconsts[node.output[0]] = imp.qconsts[src]
    else:
        imp.values[node.output[0]] = imp.dyn(node)


# ---------------------------------------------------------------------- arithmetic
def _channel_vector(imp: _Importer, node: onnx.NodeProto, x: _Value, raw: np.ndarray,
                    what: str) -> np.ndarray:
    """A constant that (with ONNX/numpy broadcasting) holds one value per channel of x."""
    shape = imp.shape(x)
    arr = np.asarray(raw)
    try:
        full = np.broadcast_to(arr, (1, *shape))
    except ValueError:
        full = None
    if full is None or full.shape != (1, *shape):
        raise OnnxImportError(f"{imp.where(node)}: the {what} constant of shape {arr.shape} "
                              f"does not broadcast against the tensor (batch, {shape})")
    per = full[0].reshape(shape[0], -1)
    vec = per[:, 0]
    if not np.all(per == vec[:, None]):
        raise OnnxImportError(f"{imp.where(node)}: the {what} constant varies along spatial "
                              "axes; qfx scales and shifts are per channel")
    return vec.astype(np.int64).copy()


def _batchnorm_node(imp: _Importer, node: onnx.NodeProto, x: _Value,
                    scale: tuple[np.ndarray, FixedType],
                    shift: tuple[np.ndarray, FixedType]) -> None:
    (s_raw, s_t), (h_raw, h_t) = scale, shift
    attrs: dict[str, Any] = {"scale_type": s_t, "shift_type": h_t}
    params = {"scale": s_raw, "shift": h_raw}
    acc = attrs["acc_type"] = imp.size_acc(node, "batchnorm", [x], attrs, params)
    imp.add_node(node, "batchnorm", [x], acc, imp.shape(x), attrs, params)


def _split_const(imp: _Importer, node: onnx.NodeProto) -> tuple[_Value, int]:
    """(computed operand, index of the constant operand) of a binary op."""
    dyn = [i for i in range(2) if node.input[i] in imp.values]
    if len(dyn) != 1:
        raise OnnxImportError(f"{imp.where(node)}: expected one computed and one constant "
                              "operand")
    return imp.dyn(node, dyn[0]), 1 - dyn[0]


_ZERO = FixedType(1, 1, False)  # holds 0 (and 1: the unit scale)


def _mul(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    if node.op_type == "Mul" and all(i in imp.values for i in node.input[:2]):
        _mul_tensors(imp, node)  # two computed tensors: the IR mul (ops-graph)
        return
    x, ci = _split_const(imp, node)
    raw, t = imp.fixed(node, ci, "factor")
    if node.op_type == "Div":
        if ci != 1:
            raise OnnxImportError(f"{imp.where(node)}: only division by a constant is supported")
        vals = np.ldexp(raw.astype(np.float64), -t.frac_bits)
        _pow2_exponent(np.abs(vals), f"{imp.where(node)} divisor")
        raw, t = _exact_fixed(1.0 / vals, imp.where(node))  # exact: powers of two
    s = _channel_vector(imp, node, x, raw, "factor")
    _batchnorm_node(imp, node, x, (s, t.storage()),
                    (np.zeros_like(s), _ZERO))


def _mul_tensors(imp: _Importer, node: onnx.NodeProto) -> None:
    where = imp.where(node)
    a, b = imp.dyn(node, 0), imp.dyn(node, 1)
    if math.prod(imp.shape(a)) < math.prod(imp.shape(b)):
        a, b = b, a  # the gate second (the product is symmetric)
    sa, sb = imp.shape(a), imp.shape(b)
    if sa != sb and not (len(sa) == 3 and sb == (sa[0], 1, 1)):
        raise OnnxImportError(f"{where}: multiplies shapes {sa} and {sb}; only equal shapes or "
                              "a per-channel (C, 1, 1) gate over (C, H, W)")
    acc = _exact_acc(imp, node, "mul", [a, b], "product")
    imp.add_node(node, "mul", [a, b], acc, sa, {"acc_type": acc})


def _exact_acc(imp: _Importer, node: onnx.NodeProto, op: str, ins: list[_Value],
               result: str) -> FixedType:
    """The accumulator of ``op`` on ``ins`` by the op's own rule; refused when the exact
    ``result`` does not fit a double (the ONNX exports compute in float64)."""
    acc = imp.size_acc(node, op, ins, {}, {})
    if acc.width > FLOAT64_EXACT_BITS:
        raise OnnxImportError(f"{imp.where(node)}: the exact {result} needs {acc.cpp()}, wider "
                              f"than {FLOAT64_EXACT_BITS} bits")
    return acc


def _add(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    if all(i in imp.values for i in node.input[:2]):
        a, b = imp.dyn(node, 0), imp.dyn(node, 1)
        if imp.shape(a) != imp.shape(b):
            raise OnnxImportError(f"{where}: adds shapes {imp.shape(a)} and {imp.shape(b)} "
                                  "(broadcasting is not supported)")
        acc = _exact_acc(imp, node, "add", [a, b], "sum")
        imp.add_node(node, "add", [a, b], acc, imp.shape(a), {"acc_type": acc})
        return
    if _threshold_chain(imp, node):
        return
    x, ci = _split_const(imp, node)
    raw, t = imp.fixed(node, ci, "addend")
    vec = _channel_vector(imp, node, x, raw, "addend")
    p = x.pending
    if p is not None and p.op in ("dense", "conv2d", "batchnorm") and \
            imp.single_consumer(node.input[1 - ci]) is node:
        # fold the constant into the producer's bias/shift: the same exact sum, one node
        key, tkey = ("shift", "shift_type") if p.op == "batchnorm" else ("bias", "bias_type")
        old = (p.params[key], p.attrs[tkey]) if key in p.params else \
            (np.zeros(vec.size, dtype=np.int64), _ZERO)
        (o_raw, n_raw), frac = _align([old, (vec, t)])
        total = o_raw + n_raw
        total_t = FixedType.for_raw_range(int(min(total.min(), 0)), int(max(total.max(), 0)),
                                          frac)
        shape = imp.edges[p.output].shape
        imp.drop(p)
        src = _Value(p.inputs[0])
        if p.op == "batchnorm":
            _batchnorm_node(imp, node, src, (p.params["scale"], p.attrs["scale_type"]),
                            (total, total_t))
        else:
            attrs = {k: v for k, v in p.attrs.items()
                     if k not in ("weight_type", "bias_type", "acc_type")}
            _weighted(imp, node, src, p.op, p.params["weight"], p.attrs["weight_type"],
                      (total, total_t), shape, attrs)
        return
    _batchnorm_node(imp, node, x, (np.ones_like(vec), _ZERO),
                    (vec, t.storage()))


def _sub(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    if _threshold_chain(imp, node):
        return
    x, ci = _split_const(imp, node)
    raw, t = imp.fixed(node, ci, "operand")
    vec = _channel_vector(imp, node, x, raw, "operand")
    if ci == 1:  # x - c
        neg = -vec
        _batchnorm_node(imp, node, x, (np.ones_like(vec), _ZERO),
                        (neg, FixedType.for_raw_range(int(min(neg.min(), 0)),
                                                      int(max(neg.max(), 0)), t.frac_bits)))
    else:  # c - x
        _batchnorm_node(imp, node, x, (-np.ones_like(vec), FixedType(1, 1, True)),
                        (vec, t.storage()))


IMPORTERS.update({"Quant": _quant, "Trunc": _trunc, "Constant": _constant,
                  "Identity": _alias, "Dropout": _alias, "Mul": _mul, "Div": _mul, "Add": _add,
                  "Sub": _sub})
