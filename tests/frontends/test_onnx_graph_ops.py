"""The (Q)ONNX importer reads Concat, Resize (nearest, integer factors), constant Pad and the Mul
of two tensors as the IR concat / upsample / pad / mul: qfx's own QONNX export of a graph with
all four imports back to a graph that computes the same bits, and what is not exact is refused
in one line naming the node."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import qonnx.custom_op.general  # noqa: F401  (the Quant domain)
from builders import graph_ops_net
from onnx import TensorProto, helper, numpy_helper

import qfx
from qfx.backends.onnx import build_qonnx_model
from qfx.backends.onnx._common import QONNX_DOMAIN
from qfx.frontends.onnx import OnnxImportError, import_onnx_model
from qfx.ir.graph import Edge


def test_qonnx_export_of_the_graph_ops_imports_to_the_same_bits():
    net, calib = graph_ops_net((6, 1, 1))  # ONNX broadcasts a (C, 1, 1) gate
    graph = qfx.freeze(net, (calib[0][:1], calib[1][:1]))
    e = graph.edges["gate"]  # QONNX's Quant saturates: a SAT gate
    graph.edges["gate"] = Edge(e.name, e.shape, e.type.replace(overflow="SAT"))
    back = import_onnx_model(build_qonnx_model(graph))
    assert [n.op for n in back.nodes] == [n.op for n in graph.nodes]
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(8, 2, 4, 4)) * 8, rng.normal(size=(8, 6, 1, 1)) * 8]
    xs = [x.astype(np.float32).astype(np.float64) for x in xs]
    for want, got in zip(qfx.run_graph(graph, xs).raw, qfx.run_graph(back, xs).raw, strict=True):
        assert np.array_equal(want, got)


def _model(op: str, inputs: list[str], attrs: dict, consts: dict) -> onnx.ModelProto:
    """x (1, 2, 4, 4) -> Quant(8 bits, LSB 2**-4) -> q -> op(inputs) -> y."""
    q = helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], domain=QONNX_DOMAIN, signed=1,
                         narrow=0, rounding_mode="ROUND")
    node = helper.make_node(op, inputs, ["y"], name="bad", **attrs)
    inits = [numpy_helper.from_array(np.float32(v), n)
             for n, v in (("s", 2.0**-4), ("z", 0.0), ("b", 8.0))]
    inits += [numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items()]
    g = helper.make_graph(
        [q, node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                               helper.make_opsetid(QONNX_DOMAIN, 1)])


_ROI = np.zeros(0, np.float32)


@pytest.mark.parametrize("op, inputs, attrs, consts, match", [
    ("Resize", ["q", "roi", "sc"], {"mode": "nearest", "nearest_mode": "floor",
                                    "coordinate_transformation_mode": "asymmetric"},
     {"roi": _ROI, "sc": np.float32([1, 1, 1.5, 1.5])},
     r"node 'bad' \(Resize\): Resize factors \[1.0, 1.0, 1.5, 1.5\] are not integer"),
    ("Resize", ["q", "roi", "sc"], {"mode": "linear"},
     {"roi": _ROI, "sc": np.float32([1, 1, 2, 2])}, r"node 'bad' \(Resize\): only nearest"),
    ("Concat", ["q", "q"], {"axis": 2}, {},
     r"node 'bad' \(Concat\): only Concat .* on the channel axis"),
    ("Pad", ["q", "p"], {"mode": "reflect"}, {"p": np.int64([0, 0, 1, 1, 0, 0, 1, 1])},
     r"node 'bad' \(Pad\): only constant Pad of H and W"),
])
def test_inexact_or_unsupported_forms_are_refused_naming_the_node(op, inputs, attrs, consts,
                                                                   match):
    with pytest.raises(OnnxImportError, match=match) as err:
        import_onnx_model(_model(op, inputs, attrs, consts))
    assert "\n" not in str(err.value)
