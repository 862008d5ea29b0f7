"""QONNX export/import of binarized networks: BipolarQuant weights and activations as FINN and
qonnx read them. The qonnx executor's outputs equal (==) the frozen executor's, and
export_qonnx -> import_onnx gives back the same graph."""

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from torch import nn

import qfx
from qfx.backends.onnx import (
    OnnxExportError,
    build_qonnx_model,
)
from qfx.backends.onnx._common import QONNX_DOMAIN
from qfx.fixed.fixed_type import FixedType
from qfx.frontends.onnx import OnnxImportError, import_onnx_model
from qfx.frontends.pytorch import freeze
from qfx.ir import run_graph
from qfx.ir.graph import Edge, Graph, Node
from qfx.nn import (
    QBatchNorm1d,
    QBatchNorm2d,
    QBinaryConv2d,
    QBinaryLinear,
    QConfig,
    QFlatten,
    QInput,
    QLinear,
    QMaxPool2d,
    QSign,
    QThermometer,
)
from qfx.zoo import digits_bnn


def _qonnx_run(model, x: np.ndarray) -> np.ndarray:
    mw = ModelWrapper(model)
    out = execute_onnx(mw, {mw.graph.input[0].name: x.astype(np.float32)})
    return out[mw.graph.output[0].name]


def _assert_qonnx_exact(graph: Graph, x: np.ndarray) -> np.ndarray:
    x32 = np.asarray(x, dtype=np.float32)
    got = _qonnx_run(build_qonnx_model(graph, batch_size=x32.shape[0]), x32)
    want = run_graph(graph, x32.astype(np.float64)).outputs[0]
    assert got.shape == want.shape
    assert np.array_equal(got.astype(np.float64), want), f"{(got != want).sum()} values differ"
    return want


def _warm(net: nn.Module, x: torch.Tensor) -> nn.Module:
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x)
    return net.eval()


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(3)
    x = torch.rand(48, 1, 8, 8) / 2
    net = _warm(digits_bnn(), x)
    return freeze(net, x[:1]), x.numpy()


def _binary_conv_net() -> tuple[Graph, np.ndarray]:
    """Thermometer on 2 channels, binary convs with -1 padding (stride, dilation, groups, a
    scaled one), BatchNorm + sign of both signs (thresholds of both directions), binary fc."""
    torch.manual_seed(5)
    with qfx.config(QConfig()):
        net = nn.Sequential(
            QInput(8, signed=False), QThermometer(3),
            QBinaryConv2d(6, 8, 3, stride=2, padding=1), QBatchNorm2d(8), QSign(),
            QBinaryConv2d(8, 8, 3, padding=2, dilation=2, groups=2, scale=True),
            QBatchNorm2d(8), QSign(), QMaxPool2d(2), QFlatten(),
            QBinaryLinear(8 * 2 * 2, 12), QBatchNorm1d(12), QSign(), QLinear(12, 4))
    x = torch.rand(32, 2, 8, 8)
    _warm(net, x)
    with torch.no_grad():
        for bn in (net[3], net[6], net[11]):  # negative scales: direction -1 thresholds
            bn.weight.mul_(torch.where(torch.arange(bn.num_features) % 3 == 0, -1.0, 1.0))
    return freeze(net, x[:1]), x.numpy()


@pytest.fixture(scope="module")
def conv_net():
    return _binary_conv_net()


def test_digits_bnn_runs_exactly_in_qonnx(digits):
    graph, x = digits
    for s in (1.0, 4.0, -1.0):  # 4.0 saturates the input cast, -1.0 clamps it to 0
        out = _assert_qonnx_exact(graph, x * s)
        assert len(np.unique(out)) > (1 if s < 0 else 20)


def test_binary_conv_net_with_padding_runs_exactly_in_qonnx(conv_net):
    graph, x = conv_net
    ops = [n.op for n in graph.nodes]
    assert ops.count("binary_conv2d") == 2 and "binary_dense" in ops
    directions = np.concatenate([n.params["direction"] for n in graph.nodes
                                 if n.op == "threshold"])
    assert set(directions.tolist()) == {-1, 1}
    assert any("scale" in n.params for n in graph.nodes)
    for s in (1.0, 3.0, -0.5):
        _assert_qonnx_exact(graph, x * s)


def test_bipolar_quant_nodes_follow_the_qonnx_convention(digits):
    graph, _ = digits
    model = build_qonnx_model(graph)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    bq = [n for n in model.graph.node if n.op_type == "BipolarQuant"]
    assert len(bq) == 7  # 3 weight tensors, 3 signs, the thermometer
    for n in bq:
        assert n.domain == QONNX_DOMAIN and inits[n.input[1]] == np.float32(1.0)
        if n.input[0] in inits:
            assert set(np.unique(inits[n.input[0]]).tolist()) == {-1.0, 1.0}
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    assert len(pads) == 2 and all(inits[p.input[2]] == np.float32(-1.0) for p in pads)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(list(helper.get_attribute_value(a)) == [0, 0, 0, 0]
               for c in convs for a in c.attribute if a.name == "pads")
    # no 1-bit Quant anywhere: binary values are BipolarQuant's job
    assert all(inits[n.input[3]] > 1 for n in model.graph.node if n.op_type == "Quant")


def _same_graph(a: Graph, b: Graph) -> None:
    assert [n.op for n in a.nodes] == [n.op for n in b.nodes]
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        assert na.params.keys() == nb.params.keys(), na.name
        for k in na.params:
            assert np.array_equal(na.params[k], nb.params[k]), (na.name, k)


def test_qonnx_round_trip_of_digits_bnn_is_identical(digits):
    graph, x = digits
    back = import_onnx_model(build_qonnx_model(graph))
    _same_graph(graph, back)
    for n in graph.nodes:
        assert back.edges[back.node(n.name).output].type == graph.out_type(n), n.name
    for s in (1.0, 4.0):
        assert np.array_equal(run_graph(back, x * s).outputs[0],
                              run_graph(graph, x * s).outputs[0])


def test_qonnx_round_trip_of_a_binary_conv_net(conv_net):
    graph, x = conv_net
    back = import_onnx_model(build_qonnx_model(graph))
    ops = [n.op for n in back.nodes]
    assert ops.count("binary_conv2d") == 2 and ops.count("threshold") == 3
    assert "thermometer" in ops and "binary_dense" in ops
    for s in (1.0, 3.0):
        assert np.array_equal(run_graph(back, x * s).outputs[0],
                              run_graph(graph, x * s).outputs[0])


def _threshold_graph(t_raw, direction, src: FixedType | None = None) -> Graph:
    src = src or FixedType(6, 3)
    c = len(t_raw)
    g = Graph(inputs=["x"], outputs=["t"])
    g.add_edge(Edge("x", (c,), src))
    g.add_edge(Edge("q", (c,), src.replace(rounding="RND_CONV", overflow="SAT")))
    g.add_edge(Edge("t", (c,), FixedType(2, 2)))
    g.add_node(Node("q", "input", ["x"], "q"))
    t_raw = np.array(t_raw, dtype=np.int64)
    g.add_node(Node("t", "threshold", ["q"], "t",
                    {"threshold_type": FixedType.for_raw_range(int(t_raw.min()),
                                                               int(t_raw.max()),
                                                               src.frac_bits)},
                    {"threshold": t_raw, "direction": np.array(direction, dtype=np.int64)}))
    return g


@pytest.mark.parametrize("direction", [[1, 1, 1, 1], [-1, -1, -1, -1], [1, -1, -1, 1]])
def test_thresholds_of_every_direction_are_exact_on_every_input(direction):
    # ties (a == T), thresholds at and one step beyond the range ends
    graph = _threshold_graph([0, -32, 32, 5], direction)
    x = np.repeat((np.arange(-40, 40) / 8.0)[:, None], 4, axis=1)
    _assert_qonnx_exact(graph, x)
    back = import_onnx_model(build_qonnx_model(graph))
    _same_graph(graph, back)
    assert np.array_equal(run_graph(back, x).outputs[0], run_graph(graph, x).outputs[0])


def test_wide_thresholds_and_dot_products_are_refused_with_the_node():
    graph = _threshold_graph([0, 1], [1, -1], src=FixedType(24, 12))
    with pytest.raises(OnnxExportError, match=r"node 't' \(threshold\).*float32"):
        build_qonnx_model(graph)
    graph = _threshold_graph([0, 1], [1, -1], src=FixedType(23, 12))
    _assert_qonnx_exact(graph, np.array([[0.0, 2.0**-11], [-3.0, 2000.0]]))


# ---------------------------------------------------------------------- malformed files
def _exported(graph: Graph):
    return build_qonnx_model(graph)


def _bq(model, name: str):
    return next(n for n in model.graph.node if n.op_type == "BipolarQuant" and
                n.output[0] == name)


def test_bipolar_activation_with_scale_other_than_one_is_refused(digits):
    model = _exported(digits[0])
    model.graph.initializer.append(numpy_helper.from_array(np.float32(0.5), "half"))
    _bq(model, "sign1").input[1] = "half"
    with pytest.raises(OnnxImportError, match=r"node 'sign1' \(BipolarQuant\).*scale 1"):
        import_onnx_model(model)


def test_bipolar_quant_with_computed_scale_is_refused(digits):
    model = _exported(digits[0])
    _bq(model, "sign2").input[1] = "qin"  # a computed tensor
    with pytest.raises(OnnxImportError, match=r"node 'sign2' \(BipolarQuant\).*constant"):
        import_onnx_model(model)
    model = _exported(digits[0])
    weight_bq = next(n for n in model.graph.node if n.op_type == "BipolarQuant" and
                     "fc1_weight" in n.input[0])
    weight_bq.input[1] = "qin"
    with pytest.raises(OnnxImportError, match=rf"node {weight_bq.name!r}.*constant"):
        import_onnx_model(model)


def test_bipolar_weights_with_non_power_of_two_scale_are_refused(digits):
    model = _exported(digits[0])
    model.graph.initializer.append(numpy_helper.from_array(np.float32(0.3), "odd"))
    weight_bq = next(n for n in model.graph.node if n.op_type == "BipolarQuant" and
                     "conv2_weight" in n.input[0])
    weight_bq.input[1] = "odd"
    with pytest.raises(OnnxImportError, match=rf"node {weight_bq.name!r}.*power of two"):
        import_onnx_model(model)


def test_pad_other_than_minus_one_is_refused(digits):
    model = _exported(digits[0])
    pad = next(n for n in model.graph.node if n.op_type == "Pad")
    model.graph.initializer.append(numpy_helper.from_array(np.float32(0.0), "zero_pad"))
    pad.input[2] = "zero_pad"
    with pytest.raises(OnnxImportError, match=rf"node {pad.name!r} \(Pad\).*-1 padding"):
        import_onnx_model(model)


def test_bipolar_quant_on_a_hand_written_sign_imports_as_a_threshold():
    """BipolarQuant straight on a computed tensor (no Sub): a threshold at 0."""
    q = QONNX_DOMAIN
    consts = {"s": np.float32(2.0**-2), "z": np.float32(0.0), "b": np.float32(6.0),
              "one": np.float32(1.0)}
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], domain=q, signed=1,
                              narrow=0, rounding_mode="ROUND", name="quant_in"),
             helper.make_node("BipolarQuant", ["xq", "one"], ["y"], domain=q, name="sign")]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("x", "y")]
    model = helper.make_model(
        helper.make_graph(nodes, "sign", io[:1], io[1:],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
                          value_info=[helper.make_tensor_value_info("xq", TensorProto.FLOAT,
                                                                    [1, 3])]),
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(q, 1)])
    graph = import_onnx_model(model)
    assert [n.op for n in graph.nodes] == ["input", "threshold"]
    for v in (-0.125, -0.1, 0.0, 0.1, 3.0):  # -0.1 rounds to -0.0 (+1), -0.125 to -0.25
        x = np.array([[v, -v, 9.0]], dtype=np.float32)
        assert np.array_equal(run_graph(graph, x.astype(np.float64)).outputs[0],
                              _qonnx_run(model, x).astype(np.float64))


def test_thermometer_on_a_flat_input_is_exact_and_round_trips():
    """(The graph of test_qonnx.py's former refusal test: thermometer is now exported.)"""
    g = Graph(inputs=["x"], outputs=["t"])
    g.add_edge(Edge("x", (2,), FixedType(8, 0, False)))
    g.add_edge(Edge("q", (2,), FixedType(8, 0, False, "RND", "SAT")))
    g.add_edge(Edge("t", (6,), FixedType(2, 2)))
    g.add_node(Node("q", "input", ["x"], "q"))
    g.add_node(Node("t", "thermometer", ["q"], "t",
                    {"threshold_type": FixedType(8, 0, False), "levels": 3},
                    {"thresholds": np.array([64, 128, 192], dtype=np.int64)}))
    x = np.stack([np.arange(-8, 264) / 256.0, np.arange(264, -8, -1) / 256.0], axis=1)
    _assert_qonnx_exact(g, x)
    back = import_onnx_model(build_qonnx_model(g))
    _same_graph(g, back)
    assert np.array_equal(run_graph(back, x).outputs[0], run_graph(g, x).outputs[0])
