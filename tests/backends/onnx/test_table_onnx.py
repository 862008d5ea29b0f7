"""Table activations in ONNX: export_onnx gathers the IR's exact tables (onnxruntime == the
executor on every input code); export_qonnx writes standard Sigmoid / Tanh / Exp and softmax's
Exp / ReduceSum / Reciprocal between Quants (qonnx's executor == the executor) and refuses a table
that float32 cannot reproduce; import_onnx reads Sigmoid / Tanh / Exp between Quants back
exactly and refuses a float Softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from torch import nn

import qfx
from qfx.backends.onnx import OnnxExportError, build_onnx_model, build_qonnx_model, run_onnx
from qfx.fixed import FixedQuantizer, FixedType
from qfx.fixed.tables import function_table, table_codes
from qfx.frontends.onnx import OnnxImportError, import_onnx_model
from qfx.ir.graph import Edge, Graph, Node
from qfx.nn import QConfig, QExp, QInput, QLinear, QSigmoid, QSoftmax, QTanh


def _net(last: nn.Module, overflow: str = "SAT") -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(5)
    cfg = QConfig(act_width=7, weight_width=6, act_overflow=overflow)
    net = nn.Sequential(QInput(7, config=cfg), QTanh(config=cfg), QLinear(4, 5, config=cfg),
                        QSigmoid(config=cfg), QLinear(5, 4, config=cfg), last)
    net[0].output_quantizer = FixedQuantizer(7, True, "RND", "SAT", int_bits=3)
    with qfx.calibration(net):
        net(torch.randn(64, 4))
    in_t = net[0].output_quantizer.fixed_type
    codes = in_t.from_int(table_codes(in_t))
    every = codes[(np.arange(128)[:, None] + 32 * np.arange(4)[None, :]) % 128]
    return net.eval(), torch.cat([torch.from_numpy(every), torch.randn(16, 4) * 8]).double()


def test_export_onnx_gathers_the_exact_tables():
    net, x = _net(QSoftmax(config=QConfig(act_width=7, act_overflow="WRAP")), "WRAP")
    graph = qfx.freeze(net, x[:1])
    y = run_onnx(build_onnx_model(graph), x.numpy())[0]
    assert np.array_equal(y, qfx.run_graph(graph, x).outputs[0])


def test_qonnx_export_is_exact_under_qonnx_and_imports_back():
    net, x = _net(QExp(config=QConfig(act_width=7)))
    graph = qfx.freeze(net, x[:1])
    model = build_qonnx_model(graph, batch_size=x.shape[0])
    assert {"Tanh", "Sigmoid", "Exp"} <= {n.op_type for n in model.graph.node}
    mw = ModelWrapper(model)
    x32 = x.numpy().astype(np.float32)
    got = execute_onnx(mw, {mw.graph.input[0].name: x32})[mw.graph.output[0].name]
    want = qfx.run_graph(graph, x32.astype(np.float64)).outputs[0]
    assert np.array_equal(got.astype(np.float64), want)
    back = import_onnx_model(build_qonnx_model(graph))
    assert [n.op for n in back.nodes] == [n.op for n in graph.nodes]
    assert np.array_equal(qfx.run_graph(back, x).raw[0], qfx.run_graph(graph, x).raw[0])


def test_qonnx_softmax_is_exact_under_qonnx():
    net, x = _net(QSoftmax(config=QConfig(act_width=7)))
    graph = qfx.freeze(net, x[:1])
    model = build_qonnx_model(graph, batch_size=x.shape[0])
    assert {"Exp", "ReduceSum", "Reciprocal"} <= {n.op_type for n in model.graph.node}
    mw = ModelWrapper(model)
    x32 = x.numpy().astype(np.float32)
    got = execute_onnx(mw, {mw.graph.input[0].name: x32})[mw.graph.output[0].name]
    assert np.array_equal(got.astype(np.float64),
                          qfx.run_graph(graph, x32.astype(np.float64)).outputs[0])
    with pytest.raises(OnnxImportError, match=r"\(Softmax\): a float Softmax followed by a "
                       r"Quant rounds the exact softmax"):
        import_onnx_model(_float_softmax_model())


def _float_softmax_model():
    from onnx import TensorProto, helper

    from qfx.backends.onnx._common import QONNX_DOMAIN

    def quant(i, o):
        return helper.make_node("Quant", [i, "s", "z", "b"], [o], domain=QONNX_DOMAIN,
                                signed=1, narrow=0, rounding_mode="ROUND")
    g = helper.make_graph(
        [quant("x", "q"), helper.make_node("Softmax", ["q"], ["p"], axis=1), quant("p", "y")],
        "sm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[helper.make_tensor(n, TensorProto.FLOAT, [], [v])
                     for n, v in (("s", 0.125), ("z", 0.0), ("b", 8.0))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                               helper.make_opsetid(QONNX_DOMAIN, 1)])


def test_qonnx_export_refuses_a_table_float32_cannot_reproduce():
    x_t = FixedType(10, 4, rounding="RND", overflow="SAT")
    o_t = FixedType(16, 0, False, "RND_CONV", "SAT")
    g = Graph(inputs=["x"], outputs=["s"])
    for name, t in (("x", FixedType(16, 8)), ("q", x_t), ("s", o_t)):
        g.add_edge(Edge(name, (3,), t))
    g.add_node(Node("q", "input", ["x"], "q"))
    g.add_node(Node("s", "sigmoid", ["q"], "s", {"index_type": x_t, "table_type": o_t},
                    {"table": np.array(function_table("sigmoid", x_t, o_t))}))
    with pytest.raises(OnnxExportError, match=r"node 's' \(sigmoid\): float32 Sigmoid at input "
                       r".* the exact table holds .*export_onnx emits the exact table"):
        build_qonnx_model(g)
