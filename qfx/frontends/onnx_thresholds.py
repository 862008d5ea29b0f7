"""(Q)ONNX importer rules that become thresholds, registered into
:data:`qfx.frontends.onnx.IMPORTERS`: ``BipolarQuant`` (+-1 weights on a constant; on a computed
tensor a threshold at 0, or with the ``Sub`` / ``Add`` [-> ``Mul`` by +-1] before it one IR
``threshold``), ``Unsqueeze -> Sub -> BipolarQuant -> Reshape`` (the IR ``thermometer``),
FINN/QONNX ``MultiThreshold`` (the IR ``multithreshold``) and a float ``BatchNormalization``
[-> ``Relu``] read by one ``Quant`` or ``BipolarQuant`` (integer thresholds searched on the
source's own float32 arithmetic, :mod:`qfx.frontends.thresholds`). Kept together because they
share the threshold node builder and the reading of BipolarQuant's unit scale.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from qfx.fixed.fixed_type import FixedType
from qfx.frontends.onnx_importer import _QUANT_DOMAINS, IMPORTERS, _Importer, _Value
from qfx.frontends.onnx_values import OnnxImportError, _attrs, _exact_fixed, _pow2_exponent

__all__: list[str] = []


# ---------------------------------------------------------------------- BipolarQuant
def _unit_scale(imp: _Importer, node: onnx.NodeProto) -> bool:
    """Whether a BipolarQuant's scale is the constant 1 (raises when it is not a constant)."""
    if len(node.input) != 2:
        raise OnnxImportError(f"{imp.where(node)}: BipolarQuant takes (x, scale)")
    try:
        scale = np.asarray(imp.const(node, 1), dtype=np.float64)
    except OnnxImportError as err:
        raise OnnxImportError(f"{err} (BipolarQuant's scale must be a constant)") from None
    return scale.size > 0 and bool(np.all(scale == 1.0))


def _bipolar(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    if node.input[0] in imp.consts:  # +-1 weights (times power-of-two scales)
        unit = _unit_scale(imp, node)
        scale = imp.const(node, 1)
        e = _pow2_exponent(scale, where)
        w = imp.consts[node.input[0]]
        if not np.all(np.isfinite(w)):
            raise OnnxImportError(f"{where}: the constant has non-finite values")
        try:
            e = np.broadcast_to(e, w.shape)
        except ValueError:
            raise OnnxImportError(f"{where}: scale shape {e.shape} does not broadcast against "
                                  f"the constant {w.shape}") from None
        frac = int(-e.min())
        raw = np.where(w >= 0, 1, -1).astype(np.int64) << (e + frac)
        imp.qconsts[node.output[0]] = (raw, FixedType.for_raw_range(int(raw.min()),
                                                                    int(raw.max()), frac))
        if unit:
            imp.bipolar.add(node.output[0])
        return
    if node.input[0] in imp.qconsts:
        raise OnnxImportError(f"{where}: BipolarQuant of a Quant-ed constant is not supported "
                              "(apply it to the float initializer)")
    # binary activations: +1 where x >= 0, i.e. a threshold at 0
    if not _unit_scale(imp, node):
        raise OnnxImportError(f"{where}: BipolarQuant on a computed tensor must have scale 1: "
                              "qfx's binary activations are exactly -1/+1 (scale the next "
                              "layer instead)")
    x = imp.dyn(node)
    t = np.zeros(imp.shape(x)[0], dtype=np.int64)
    _threshold_node(imp, node, x, t, np.ones_like(t))


_BINARY = FixedType(2, 2)  # the type of every binary (-1/+1) edge


def _threshold_node(imp: _Importer, node: onnx.NodeProto, x: _Value, t_raw: np.ndarray,
                    direction: np.ndarray) -> _Value:
    """An IR threshold (raw thresholds on x's grid, clamped one step outside its range)."""
    x_t = imp.type(x)
    t_raw = np.clip(t_raw, x_t.raw_min - 1, x_t.raw_max + 1).astype(np.int64)
    t_t = FixedType.for_raw_range(int(t_raw.min()), int(t_raw.max()), x_t.frac_bits)
    return imp.add_node(node, "threshold", [x], _BINARY, imp.shape(x), {"threshold_type": t_t},
                        {"threshold": t_raw, "direction": direction.astype(np.int64)},
                        pending=False)


def _per_channel(imp: _Importer, x: _Value, value: np.ndarray) -> np.ndarray | None:
    """The float constant as one value per channel of x, or None if it is not one."""
    shape = imp.shape(x)
    arr = np.asarray(value, dtype=np.float64)
    try:
        full = np.broadcast_to(arr, (1, *shape))
    except ValueError:
        return None
    if full.shape != (1, *shape):
        return None
    per = full[0].reshape(shape[0], -1)
    if not np.all(per == per[:, :1]) or not np.all(np.isfinite(per)):
        return None
    return per[:, 0].copy()


def _threshold_chain(imp: _Importer, node: onnx.NodeProto) -> bool:
    """Sub(x, T) | Sub(T, x) | Add(x, -T), optionally then Mul(D) with D = +-1 per channel,
    then BipolarQuant(scale 1): one IR threshold (+1 where D * (x - T) >= 0). False when the
    nodes do not form this pattern (they are then imported one by one, also exactly)."""
    dyn = [i for i in range(2) if node.input[i] in imp.values]
    if len(dyn) != 1 or not any(node.input[1 - dyn[0]] in c for c in (imp.consts, imp.qconsts)):
        return False
    xi = dyn[0]
    c = np.asarray(imp.const(node, 1 - xi), dtype=np.float64)
    t, d0 = (-c, 1.0) if node.op_type == "Add" else (c, 1.0 if xi == 0 else -1.0)
    chain, nxt = [], imp.single_consumer(node.output[0])
    d = None
    if nxt is not None and nxt.op_type == "Mul" and nxt.domain in ("", "ai.onnx") and \
            len(nxt.input) == 2:
        other = [i for i in nxt.input if i != node.output[0]]
        if len(other) != 1 or other[0] not in imp.consts:
            return False
        d = imp.consts[other[0]]
        chain.append(nxt)
        nxt = imp.single_consumer(nxt.output[0])
    if nxt is None or nxt.op_type != "BipolarQuant" or nxt.domain not in _QUANT_DOMAINS or \
            nxt.input[0] != (chain[-1] if chain else node).output[0] or not _unit_scale(imp, nxt):
        return False
    x = imp.dyn(node, xi)
    t_vec = _per_channel(imp, x, t)
    d_vec = _per_channel(imp, x, d0 * (np.ones(1) if d is None else np.asarray(d)))
    if t_vec is None or d_vec is None or not np.all(np.isin(d_vec, (-1.0, 1.0))):
        return False
    # a >= T <=> a >= ceil(T * 2**F);  a <= T <=> a <= floor(T * 2**F)  (a: raw on x's grid)
    scaled = np.ldexp(t_vec, imp.type(x).frac_bits)
    raw = np.where(d_vec > 0, np.ceil(scaled), np.floor(scaled))
    x_t = imp.type(x)
    raw = np.clip(raw, x_t.raw_min - 1, x_t.raw_max + 1).astype(np.int64)
    for n in [*chain, nxt]:
        imp.skip_node(n)
    _threshold_node(imp, nxt, x, raw, d_vec.astype(np.int64))
    return True


def _thermometer(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """Unsqueeze(x, 2) -> Sub(thresholds along axis 2) -> BipolarQuant(scale 1) -> Reshape to
    (batch, C * L, ...): the IR thermometer. Any other Unsqueeze is refused."""
    where = imp.where(node)
    x = imp.dyn(node)
    shape = imp.shape(x)
    axes = _attrs(node).get("axes")
    if axes is None and len(node.input) > 1:
        axes = imp.const(node, 1)
    axes = None if axes is None else [int(a) for a in np.asarray(axes).ravel()]
    sub = imp.single_consumer(node.output[0])
    bq = imp.single_consumer(sub.output[0]) if sub is not None else None
    rs = imp.single_consumer(bq.output[0]) if bq is not None else None
    rank = len(shape) + 2
    if axes not in ([2], [2 - rank]) or sub is None or sub.op_type != "Sub" or \
            sub.input[0] != node.output[0] or sub.input[1] not in imp.consts or \
            bq is None or bq.op_type != "BipolarQuant" or bq.domain not in _QUANT_DOMAINS or \
            rs is None or rs.op_type != "Reshape" or rs.input[0] != bq.output[0]:
        raise OnnxImportError(f"{where}: Unsqueeze is only supported as the start of a "
                              "thermometer encoding: Unsqueeze(x, axes=[2]) -> Sub(thresholds) "
                              "-> BipolarQuant -> Reshape(batch, C * levels, ...)")
    if not _unit_scale(imp, bq):
        raise OnnxImportError(f"{imp.where(bq)}: BipolarQuant on a computed tensor must have "
                              "scale 1: qfx's binary activations are exactly -1/+1")
    t = np.asarray(imp.consts[sub.input[1]], dtype=np.float64)
    if t.ndim > rank:
        raise OnnxImportError(f"{imp.where(sub)}: thresholds of shape {t.shape} do not fit")
    t = t.reshape((1,) * (rank - t.ndim) + t.shape)
    levels = t.shape[2]
    try:
        full = np.broadcast_to(t, (1, shape[0], levels, *shape[1:]))
    except ValueError:
        raise OnnxImportError(f"{imp.where(sub)}: thresholds of shape {t.shape} do not "
                              f"broadcast against (batch, {shape[0]}, levels, ...)") from None
    per = np.moveaxis(full[0], 1, -1).reshape(-1, levels)
    if not np.all(per == per[:1]) or not np.all(np.isfinite(per)):
        raise OnnxImportError(f"{imp.where(sub)}: thermometer thresholds must be the same for "
                              "every channel and position and finite")
    x_t = imp.type(x)
    raw = np.ceil(np.ldexp(per[0], x_t.frac_bits))  # x >= t <=> raw >= ceil(t * 2**F)
    raw = np.clip(raw, x_t.raw_min, x_t.raw_max + 1).astype(np.int64)
    if np.any(np.diff(raw) < 0):
        raise OnnxImportError(f"{imp.where(sub)}: thermometer thresholds must be "
                              "non-decreasing")
    target = [int(v) for v in np.asarray(imp.const(rs, 1)).ravel()]
    want = [shape[0] * levels, *shape[1:]]
    if len(target) != len(want) + 1 or target[1:] != want or target[0] < -1:
        raise OnnxImportError(f"{imp.where(rs)}: expected a reshape to (batch, "
                              f"{', '.join(map(str, want))}), got {target}")
    for n in (sub, bq, rs):
        imp.skip_node(n)
    t_t = FixedType.for_raw_range(int(raw.min()), int(raw.max()), x_t.frac_bits)
    imp.add_node(rs, "thermometer", [x], _BINARY, tuple(want),
                 {"threshold_type": t_t, "levels": levels}, {"thresholds": raw}, pending=False)


# ---------------------------------------------------------------------- multithreshold
# FINN/QONNX MultiThreshold nodes, and float BatchNormalization [-> Relu] -> Quant | BipolarQuant
# chains (Brevitas CNNs with plain nn.BatchNorm, FINN-style BNNs): the chain is a monotone
# function of the BatchNorm input's raw code, so it becomes integer thresholds on that input.
# The thresholds are searched on the source's own float32 arithmetic: onnxruntime runs the
# BatchNormalization (and Relu) node exactly as in the source graph (what qonnx's executor does),
# the Quant is applied exactly, and the result is compared with the rule on every input code
# (sampled beyond 2**20 codes x channels), so every decision, ties included, is the source's.
def _import_multithreshold(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """``MultiThreshold(x, T)``: count of ``x >= T`` per channel (T: [C or 1, K]), times
    ``out_scale`` plus ``out_bias``; a preceding ``Mul`` by +-1 per channel (used only here)
    gives the comparison directions, a following ``Mul`` by a power of two the output grid."""
    where = imp.where(node)
    a = _attrs(node)
    layout = a.get("data_layout", b"")
    layout = layout.decode() if isinstance(layout, bytes) else str(layout)
    if layout and layout not in ("NCHW", "NC", "NCW"):
        raise OnnxImportError(f"{where}: data_layout {layout!r} is not supported (channels "
                              "first only)")
    x = imp.dyn(node)
    direction = None
    p = x.pending
    if p is not None and p.op == "batchnorm" and imp.single_consumer(node.input[0]) is node \
            and not p.params["shift"].any():
        sign = np.ldexp(p.params["scale"].astype(np.float64), -p.attrs["scale_type"].frac_bits)
        if np.isin(sign, (-1.0, 1.0)).all():
            imp.drop(p)
            x, direction = _Value(p.inputs[0]), sign.astype(np.int64)
    x_t, shape = imp.type(x), imp.shape(x)
    c = shape[0] if shape else 0
    t = np.asarray(imp.const(node, 1), dtype=np.float64)
    if t.ndim != 2 or t.shape[0] not in (1, c) or t.shape[1] < 1 or not np.isfinite(t).all():
        raise OnnxImportError(f"{where}: thresholds must be finite, of shape [{c} or 1, K], "
                              f"got {t.shape}")
    t = np.broadcast_to(t, (c, t.shape[1]))
    if direction is None:
        direction = np.ones(c, dtype=np.int64)
    # D * x >= T  <=>  x >= T (D = +1) or x <= -T (D = -1); x on its grid: raw >= ceil(T * 2**F)
    scaled = np.ldexp(t * direction[:, None], x_t.frac_bits)
    raw = np.where(direction[:, None] > 0, np.ceil(scaled), np.floor(scaled))
    raw = np.clip(raw, x_t.raw_min - 1, x_t.raw_max + 1).astype(np.int64)
    raw = np.sort(raw, axis=1)
    sb_raw, sb_t = _exact_fixed(np.array([float(a.get("out_scale", 1.0)),
                                          float(a.get("out_bias", 0.0))]), where)
    s_raw, b_raw, frac = int(sb_raw[0]), int(sb_raw[1]), sb_t.frac_bits
    last = node
    nxt = imp.single_consumer(node.output[0])
    if nxt is not None and nxt.op_type == "Mul" and nxt.domain in ("", "ai.onnx"):
        other = [i for i in nxt.input if i != node.output[0]]
        f = np.asarray(imp.consts.get(other[0], np.zeros(2)) if len(other) == 1 else 0.0)
        if f.size == 1 and f.ravel()[0] > 0:
            e = int(_pow2_exponent(f, imp.where(nxt)).ravel()[0])
            frac, last = frac - e, nxt
            imp.skip_node(nxt)
    if frac < 0:
        s_raw, b_raw, frac = s_raw << -frac, b_raw << -frac, 0
    if int(s_raw) == 0:
        raise OnnxImportError(f"{where}: out_scale must not be 0")
    k = t.shape[1]
    lo, hi = sorted((int(b_raw), int(b_raw) + k * int(s_raw)))
    t_t = FixedType.for_raw_range(int(raw.min()), int(raw.max()), x_t.frac_bits)
    imp.add_node(last, "multithreshold", [x], FixedType.for_raw_range(lo, hi, frac), shape,
                 {"threshold_type": t_t, "out_scale": int(s_raw), "out_bias": int(b_raw),
                  "out_frac": frac}, {"thresholds": raw, "direction": direction},
                 pending=False)


def _bn_session(imp: _Importer, node: onnx.NodeProto, relu: bool, rank: int):
    """An onnxruntime session running the source's BatchNormalization (and Relu) node on
    float32 inputs (batch, C, 1, ...): the source graph's own float32 arithmetic."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    inits = [numpy_helper.from_array(np.asarray(imp.const(node, i), dtype=np.float32),
                                     f"p{i}") for i in range(1, 5)]
    bn = helper.make_node("BatchNormalization", ["x", "p1", "p2", "p3", "p4"],
                          ["bn" if relu else "y"],
                          epsilon=float(_attrs(node).get("epsilon", 1e-5)))
    nodes = [bn] + ([helper.make_node("Relu", ["bn"], ["y"])] if relu else [])
    dims = [None, imp.shape(imp.dyn(node))[0]] + [1] * (rank - 1)
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("x", "y")]
    opset = max([o.version for o in imp.model.opset_import if o.domain in ("", "ai.onnx")],
                default=13)
    model = helper.make_model(helper.make_graph(nodes, "bn", io[:1], io[1:], inits),
                              opset_imports=[helper.make_opsetid("", max(opset, 9))])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _import_float_batchnorm(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """BatchNormalization [-> Relu] -> Quant: one multithreshold onto the Quant's format;
    BatchNormalization -> BipolarQuant (scale 1): one threshold (+1 where BN(x) >= 0)."""
    import torch

    from qfx.frontends.thresholds import check_levels, level_thresholds

    where = imp.where(node)
    nxt = imp.single_consumer(node.output[0])
    relu = None
    if nxt is not None and nxt.op_type == "Relu" and nxt.domain in ("", "ai.onnx"):
        relu, nxt = nxt, imp.single_consumer(nxt.output[0])
    if nxt is None or nxt.domain not in _QUANT_DOMAINS or \
            nxt.op_type not in ("Quant", "BipolarQuant") or nxt.input[0] in imp.consts:
        raise OnnxImportError(f"{where}: float BatchNormalization divides by sqrt(var + eps) "
                              "and is not exact in fixed point on its own; qfx imports it only "
                              "when its output (or its Relu's) is read by one Quant or "
                              "BipolarQuant alone (it then becomes integer thresholds); fold it "
                              "into the previous layer or export it as Mul/Add by Quant-ed "
                              "constants")
    if len(node.input) != 5 or int(_attrs(node).get("training_mode", 0)):
        raise OnnxImportError(f"{where}: needs (X, scale, B, mean, var) in inference mode")
    x = imp.dyn(node)
    x_t, shape = imp.type(x), imp.shape(x)
    if x_t.width > 24:
        raise OnnxImportError(f"{where}: the input {x_t.cpp()} is wider than float32's 24 "
                              "bits, so the source's float32 BatchNormalization rounds it; "
                              "quantize it first")
    bipolar = nxt.op_type == "BipolarQuant"
    if bipolar and not _unit_scale(imp, nxt):
        raise OnnxImportError(f"{imp.where(nxt)}: BipolarQuant after a BatchNormalization must "
                              "have scale 1")
    out_t = _BINARY if bipolar else imp.cast_type(nxt, None)
    session = _bn_session(imp, node, relu is not None, len(shape))
    c = shape[0]
    lsb = np.float32(2.0 ** -x_t.frac_bits)

    def code(a: torch.Tensor) -> torch.Tensor:  # raw ints [M, C] -> output codes [M, C]
        v = a.numpy().astype(np.float32) * lsb  # exact: |a| < 2**24, power-of-two scale
        y = session.run(None, {"x": v.reshape(a.shape[0], c, *[1] * (len(shape) - 1))})[0]
        y = torch.from_numpy(y.astype(np.float64).reshape(a.shape[0], c))
        return (y >= 0).to(torch.int64) if bipolar else out_t.to_int(y)

    lo, hi = x_t.raw_min, x_t.raw_max
    label = f"{where}{' + Relu' if relu is not None else ''} + {nxt.op_type}"
    t, direction, lo_out = level_thresholds(code, lo, hi, c, *((0, 1) if bipolar else ()))
    try:
        check_levels(code, t, direction, lo_out, lo, hi, label)
    except RuntimeError as err:
        raise OnnxImportError(str(err)) from None
    for n in ([relu] if relu is not None else []) + [nxt]:
        imp.skip_node(n)
    if bipolar:
        _threshold_node(imp, nxt, x, t[:, 0].numpy(), direction.numpy())
        return
    t_t = FixedType.for_raw_range(int(t.min()), int(t.max()), x_t.frac_bits)
    imp.add_node(nxt, "multithreshold", [x], out_t, shape,
                 {"threshold_type": t_t, "out_scale": 1, "out_bias": lo_out,
                  "out_frac": out_t.frac_bits},
                 {"thresholds": t.numpy(), "direction": direction.numpy()}, pending=False)


IMPORTERS.update({"BipolarQuant": _bipolar, "Unsqueeze": _thermometer,
                  "MultiThreshold": _import_multithreshold,
                  "BatchNormalization": _import_float_batchnorm})
