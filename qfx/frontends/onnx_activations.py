"""(Q)ONNX importer rules for activations, registered into
:data:`qfx.frontends.onnx.IMPORTERS`: ``Relu`` (the IR ``relu``), ``Clip`` (the IR ``hardtanh``
with exact bounds), ``Sigmoid`` / ``Tanh`` / ``Exp`` between Quants (one lookup table of the exact
function over every input code, quantised onto the following Quant's format) and the refusal of a
float ``Softmax`` (qfx's own softmax is read by :mod:`.onnx_table`). Kept together as the
element-wise nonlinearities; the thresholding ones live in :mod:`.onnx_thresholds`.
"""

from __future__ import annotations

import numpy as np
import onnx

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.tables import check_table_width, function_table
from qfx.frontends.onnx_importer import _QUANT_DOMAINS, IMPORTERS, _Importer
from qfx.frontends.onnx_values import OnnxImportError, _attrs, _exact_fixed

__all__: list[str] = []


def _relu(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    x = imp.dyn(node)
    imp.add_node(node, "relu", [x], imp.type(x), imp.shape(x))


def _clip(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    x = imp.dyn(node)
    x_t = imp.type(x)
    a = _attrs(node)
    bounds = []
    for i, key, default in ((1, "min", x_t.raw_min), (2, "max", x_t.raw_max)):
        v = imp.const(node, i) if len(node.input) > i and node.input[i] else a.get(key)
        if v is None:
            bounds.append((default, x_t.frac_bits))
        else:
            raw, t = _exact_fixed(np.asarray(v, dtype=np.float64).reshape(-1)[:1],
                                  f"{imp.where(node)} {key}")
            bounds.append((int(raw[0]), t.frac_bits))
    frac = max(x_t.frac_bits, bounds[0][1], bounds[1][1])
    lo, hi = (r << (frac - f) for r, f in bounds)
    if lo > hi:
        raise OnnxImportError(f"{imp.where(node)}: min > max")
    shift = frac - x_t.frac_bits
    clamp_t = FixedType.for_raw_range(min(lo, x_t.raw_min << shift),
                                      max(hi, x_t.raw_max << shift), frac)
    imp.add_node(node, "hardtanh", [x], clamp_t, imp.shape(x),
                 {"min_raw": lo, "max_raw": hi, "clamp_type": clamp_t})


# ---- table activations: Sigmoid / Tanh / Exp between Quants become one lookup table
_TABLE_OPS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp"}


def _table_activation(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """``Quant -> Sigmoid/Tanh/Exp -> Quant``: the table of the exact function over every code
    of the input's format, quantised onto the following Quant's format (processed here, so the
    table is filled for the format it casts to)."""
    x = imp.dyn(node)
    x_t, fn = imp.type(x), _TABLE_OPS[node.op_type]
    q = imp.single_consumer(node.output[0])
    if q is None or q.op_type != "Quant" or q.domain not in _QUANT_DOMAINS:
        raise OnnxImportError(f"{imp.where(node)}: {node.op_type} must be read by exactly one "
                              "Quant (the table's output format)")
    try:
        check_table_width(x_t.width, f"{imp.where(node)} input {x_t.cpp()}")
    except ValueError as err:
        raise OnnxImportError(str(err)) from None
    placeholder = FixedType(2, 1)
    ir = imp.add_node(node, fn, [x], placeholder, imp.shape(x),
                      {"index_type": x_t, "table_type": placeholder},
                      {"table": np.zeros(1 << x_t.width, dtype=np.int64)}).pending
    imp.quant_dynamic(q, imp.node_index[id(q)])  # folds the cast into the table node
    imp.skip_node(q)
    t = imp.edges[ir.output].type
    ir.attrs["table_type"] = t
    ir.params["table"] = np.array(function_table(fn, x_t, t))


def _softmax(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    raise OnnxImportError(
        f"{imp.where(node)}: a float Softmax followed by a Quant rounds the exact softmax, which "
        "no finite table reproduces; qfx's softmax declares its exp and 1/sum roundings "
        "(qfx.nn.QSoftmax, exported by export_onnx / export_qonnx as Exp, ReduceSum and "
        "Reciprocal between Quants)")


IMPORTERS.update({"Relu": _relu, "Clip": _clip,
                  **dict.fromkeys(_TABLE_OPS, _table_activation), "Softmax": _softmax})
