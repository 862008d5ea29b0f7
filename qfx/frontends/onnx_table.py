"""(Q)ONNX importer rule for qfx's own QONNX softmax, registered into
:data:`qfx.frontends.onnx.IMPORTERS` (``Slice``, the pattern's first node).

:mod:`qfx.backends.onnx.qonnx_export` writes the IR ``softmax`` as standard operators between
Quants: ``Slice`` per channel -> ``Max`` -> ``Sub(x, max)`` -> ``Exp`` -> Quant (``exp_type``)
-> ``ReduceSum`` over the channels -> ``Reciprocal`` -> Quant (``recip_type``) -> ``Mul`` (then
the output Quant), each Quant possibly one of the exact two-step tie patterns. That is the IR
softmax exactly: the exponent reads ``-(max - x)`` (``diff_type``, exact), the Quants after
``Exp`` and ``Reciprocal`` are its two declared roundings (its tables, filled by
:func:`qfx.fixed.tables.function_table`; the exporter refuses a table that float32 cannot
reproduce), the sum and the product are exact. The import rebuilds the one IR node; any other
``Slice`` of a computed tensor is refused, naming the node.

Example:
    >>> from qfx.frontends.onnx import IMPORTERS
    >>> IMPORTERS["Slice"].__name__
    '_softmax_slice'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.tables import check_table_width, function_table
from qfx.frontends.onnx_importer import _QUANT_DOMAINS, IMPORTERS, _axes, _Importer
from qfx.frontends.onnx_values import OnnxImportError, _attrs
from qfx.ir.ops.table import softmax_types

__all__: list[str] = []


def _standard(node: onnx.NodeProto | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx")


def _ints(imp: _Importer, node: onnx.NodeProto, i: int) -> list[int] | None:
    if i >= len(node.input) or not node.input[i] or not imp.is_const(node.input[i]):
        return None
    return [int(v) for v in np.asarray(imp.const(node, i)).ravel()]


def _channel(imp: _Importer, node: onnx.NodeProto, rank: int) -> int | None:
    """The channel c that ``node`` slices as [c, c + 1) on axis 1, else None."""
    if not _standard(node, "Slice"):
        return None
    starts, ends, axes, steps = (_ints(imp, node, i) for i in range(1, 5))
    if starts is None or ends is None or len(starts) != 1 or len(ends) != 1 or \
            (axes is not None and [a % rank for a in axes] != [1]) or \
            (steps is not None and steps != [1]) or ends[0] != starts[0] + 1:
        return None
    return starts[0]


def _softmax_slice(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """The first Slice of qfx's QONNX softmax: the whole pattern becomes one IR softmax."""
    where = imp.where(node)
    x = imp.dyn(node)
    x_name, shape = node.input[0], imp.shape(x)
    rank, channels = len(shape) + 1, shape[0] if shape else 0
    refused = OnnxImportError(
        f"{where}: Slice of a computed tensor is only supported as the start of qfx's QONNX "
        "softmax (Slice per channel -> Max -> Sub(x, max) -> Exp -> Quant -> ReduceSum -> "
        "Reciprocal -> Quant -> Mul)")
    first = imp.single_consumer(node.output[0])
    if _standard(first, "Max"):
        taps = [_producer(imp, i) for i in first.input]
        chans = [_channel(imp, t, rank) if t is not None and t.input[0] == x_name and
                 imp.single_consumer(t.output[0]) is first else None for t in taps]
        if sorted(c for c in chans if c is not None) != list(range(channels)) or \
                len(chans) != channels:
            raise refused
        top, sub = first, imp.single_consumer(first.output[0])
    else:
        taps, top, sub = [node], node, first
        if channels != 1 or _channel(imp, node, rank) != 0:
            raise refused
    if not _standard(sub, "Sub") or list(sub.input) != [x_name, top.output[0]]:
        raise refused
    exp, e_t, e_chain = _rounded(imp, sub, "Exp", refused)
    e_name = e_chain[-1].output[0]
    users = imp.consumers.get(e_name, [])
    red = next((u for u in users if _standard(u, "ReduceSum")), None)
    mul = next((u for u in users if _standard(u, "Mul")), None)
    if len(users) != 2 or red is None or mul is None or e_name in imp.graph_outputs or \
            [a % rank for a in (_axes(imp, red) or [])] != [1] or \
            not int(_attrs(red).get("keepdims", 1)):
        raise refused
    rec, r_t, r_chain = _rounded(imp, red, "Reciprocal", refused)
    if sorted(mul.input) != sorted([e_name, r_chain[-1].output[0]]) or \
            imp.single_consumer(r_chain[-1].output[0]) is not mul:
        raise refused
    x_t = imp.type(x)
    diff_t, sum_t = softmax_types(x_t, channels, e_t)
    try:
        check_table_width(diff_t.width, f"{where} softmax input {x_t.cpp()}")
        check_table_width(sum_t.width, f"{where} sum of {channels} exp values {sum_t.cpp()}")
    except ValueError as err:
        raise OnnxImportError(str(err)) from None
    for n in [*taps, top, sub, exp, *e_chain, red, rec, *r_chain, mul]:
        imp.skip_node(n)
    attrs: dict[str, Any] = {"index_type": x_t, "diff_type": diff_t, "exp_type": e_t,
                             "sum_type": sum_t, "recip_type": r_t,
                             "acc_type": FixedType.mul(e_t, r_t)}
    params = {"exp_table": np.array(function_table("exp_neg", diff_t, e_t)),
              "recip_table": np.array(function_table("recip", sum_t, r_t))}
    imp.add_node(mul, "softmax", [x], attrs["acc_type"], shape, attrs, params)


def _rounded(imp: _Importer, src: onnx.NodeProto, op: str, refused: OnnxImportError
             ) -> tuple[onnx.NodeProto, FixedType, list[onnx.NodeProto]]:
    """``src`` -> ``op`` (Exp, Reciprocal) -> its Quant (chain): the op node, the format the
    Quant rounds its float result to, and the Quant chain's nodes."""
    fn = imp.single_consumer(src.output[0])
    q = imp.single_consumer(fn.output[0]) if _standard(fn, op) else None
    if q is None or q.op_type != "Quant" or q.domain not in _QUANT_DOMAINS:
        raise refused
    t, chain = imp.cast_chain(q, None)
    return fn, t, chain


def _producer(imp: _Importer, tensor: str) -> onnx.NodeProto | None:
    for n in imp.model.graph.node:
        if tensor in n.output:
            return n
    return None


IMPORTERS.update({"Slice": _softmax_slice})
