"""export_qonnx / import_onnx checked with the qonnx package's own executor (the optional
``interop`` dependency): outputs equal (==) the frozen executor's."""

import math

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
    build_onnx_model,
    build_qonnx_model,
    run_onnx,
)
from qfx.backends.onnx._common import QONNX_DOMAIN
from qfx.fixed.fixed_type import ROUNDING_MODES, FixedType
from qfx.frontends.onnx import import_onnx_model
from qfx.ir import run_graph
from qfx.ir.graph import Edge, Graph, Node
from qfx.nn import (
    QAvgPool2d,
    QBatchNorm1d,
    QBatchNorm2d,
    QConfig,
    QConv2d,
    QFlatten,
    QGlobalAvgPool2d,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
)


class _Seq(nn.Sequential):
    pass


def _qonnx_run(model, x: np.ndarray) -> list[np.ndarray]:
    mw = ModelWrapper(model)
    out = execute_onnx(mw, {mw.graph.input[0].name: x.astype(np.float32)})
    return [out[o.name] for o in mw.graph.output]


def _assert_qonnx_exact(graph: Graph, x: np.ndarray) -> None:
    x32 = x.astype(np.float32)
    model = build_qonnx_model(graph, batch_size=x.shape[0])
    got = _qonnx_run(model, x32)
    want = run_graph(graph, x32.astype(np.float64)).outputs
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g.astype(np.float64), w), f"{(g != w).sum()} values differ"


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # qonnx: 3e38/2**-k
@pytest.mark.parametrize("signed", [True, False])
def test_every_qonnx_rounding_mode_is_exact_on_float32_inputs(signed):
    g = Graph(inputs=["x"], outputs=[])
    g.add_edge(Edge("x", (1,), FixedType(24, 12)))
    types = []
    for width, int_bits in ((6, 2), (23, 5)):
        for r in ROUNDING_MODES:
            for o in ("SAT", "SAT_SYM"):
                t = FixedType(width, int_bits, signed, r, o)
                name = f"q{len(types)}"
                g.add_edge(Edge(name, (1,), t))
                g.add_node(Node(name, "input", ["x"], name))
                g.outputs.append(name)
                types.append(t)
    rng = np.random.default_rng(0)
    vals = []
    for width, int_bits in ((6, 2), (23, 5)):
        lsb = math.ldexp(1.0, int_bits - width)
        k = rng.integers(-(1 << min(width + 1, 24)), 1 << min(width + 1, 24), 300)
        vals += [k * lsb, (k + 0.5) * lsb, (k + 0.5) * lsb * (1 - 2**-23),
                 (k + 0.5) * lsb * (1 + 2**-22)]
    special = [0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40, 3e38, -3e38, 0.5 - 2**-25, 1.5, -2.5]
    x = np.concatenate(vals + [special]).astype(np.float32).reshape(-1, 1)
    model = build_qonnx_model(g, batch_size=x.shape[0])
    got = _qonnx_run(model, x)
    want = run_graph(g, x.astype(np.float64)).outputs
    for t, a, w in zip(types, got, want, strict=True):
        assert np.array_equal(a.astype(np.float64), w), t.cpp()


def test_quant_nodes_follow_the_qonnx_convention():
    g = Graph(inputs=["x"], outputs=["q"])
    g.add_edge(Edge("x", (4,), FixedType(8, 3)))
    g.add_edge(Edge("q", (4,), FixedType(8, 3, rounding="RND", overflow="SAT_SYM")))
    g.add_node(Node("q", "input", ["x"], "q"))
    model = build_qonnx_model(g)
    quants = [n for n in model.graph.node if n.op_type == "Quant"]
    assert all(n.domain == QONNX_DOMAIN for n in quants)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in quants:
        scale, zp, bits = (inits[i] for i in n.input[1:])
        assert np.frexp(scale)[0] == 0.5 and zp == 0.0 and bits in (8.0, 9.0)
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["rounding_mode"] == b"FLOOR"  # AP_RND as FLOOR-only: hls4ml reads it
    assert [n.op_type for n in model.graph.node] == ["Quant", "Add", "Quant"]
    final = {a.name: helper.get_attribute_value(a) for a in quants[-1].attribute}
    assert final["narrow"] == 1 and final["signed"] == 1
    assert model.graph.node[-1].output[0] == "q"


@pytest.mark.parametrize("rounding", ["RND", "RND_CONV", "TRN", "RND_INF", "RND_MIN_INF"])
def test_mlp_runs_exactly_in_qonnx(rounding):
    torch.manual_seed(0)
    with qfx.config(QConfig(act_rounding=rounding, weight_rounding=rounding,
                            weight_khot=2 if rounding == "RND" else None)):
        net = _Seq(QInput(8), QLinear(10, 7), QReLU(), QBatchNorm1d(7), QLinear(7, 3))
    x = torch.randn(48, 10)
    net.train()
    net(x)
    graph = qfx.freeze(net.eval(), x[:1])
    for s in (1.0, 16.0):
        _assert_qonnx_exact(graph, (x * s).numpy())


def test_cnn_runs_exactly_in_qonnx():
    torch.manual_seed(2)
    net = _Seq(QInput(8), QConv2d(3, 6, 3, padding=1), QBatchNorm2d(6), QReLU(),
               QMaxPool2d(2, ceil_mode=True), QAvgPool2d(3, recip_width=8), QConv2d(6, 4, 1),
               QGlobalAvgPool2d(), QFlatten(), QLinear(4, 5))
    x = torch.randn(16, 3, 11, 11)
    net.train()
    net(x)
    graph = qfx.freeze(net.eval(), x[:1])
    for s in (1.0, 8.0):
        _assert_qonnx_exact(graph, (x * s).numpy())


def _one_cast(t: FixedType, src: FixedType | None = None) -> Graph:
    g = Graph(inputs=["x"], outputs=["q"])
    g.add_edge(Edge("x", (2,), src or FixedType(8, 3)))
    feed = "x"
    if src is not None:
        g.add_edge(Edge("s", (2,), src))
        g.add_node(Node("s", "input", ["x"], "s"))
        feed = "s"
    g.add_edge(Edge("q", (2,), t))
    g.add_node(Node("q", "input", [feed], "q"))
    return g


@pytest.mark.parametrize("t, match", [
    (FixedType(8, 3, overflow="WRAP"), "AP_WRAP .*no QONNX equivalent"),
    (FixedType(8, 3, overflow="SAT_ZERO"), "AP_SAT_ZERO"),
    (FixedType(8, 3, overflow="WRAP_SM"), "AP_WRAP_SM"),
    (FixedType(30, 10, overflow="SAT"), "float32"),
    (FixedType(1, 1, overflow="SAT"), "1-bit signed"),
    (FixedType(24, 3, rounding="RND", overflow="SAT"), "half-LSB"),
])
def test_inexact_qonnx_casts_are_refused_with_the_node(t, match):
    with pytest.raises(OnnxExportError, match=rf"node 'q' \(input\): .*{match}"):
        build_qonnx_model(_one_cast(t))


def test_wrap_is_exported_where_it_cannot_overflow():
    graph = _one_cast(FixedType(10, 5, overflow="WRAP"), src=FixedType(8, 3, overflow="SAT"))
    _assert_qonnx_exact(graph, np.array([[100.0, -3.3], [0.1, 7.0]]))


def _brevitas_like() -> tuple:
    """A hand-written QONNX graph in Brevitas' style: per-channel weight scales, a float bias,
    Relu then Quant, MaxPool, Reshape, Gemm(transB=1)."""
    rng = np.random.default_rng(3)
    f32 = TensorProto.FLOAT
    inits = {
        "in_s": np.float32(2.0**-4), "z": np.float32(0.0), "b8": np.float32(8.0),
        "b4": np.float32(4.0), "b6": np.float32(6.0),
        "w_conv": rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
        "w_conv_s": np.array([2.0**-3, 2.0**-2, 2.0**-4, 2.0**-3],
                             dtype=np.float32).reshape(4, 1, 1, 1),
        "b_conv": (rng.integers(-8, 8, 4) * 2.0**-5).astype(np.float32),
        "act_s": np.float32(2.0**-3), "shape": np.array([1, -1], dtype=np.int64),
        "w_fc": rng.standard_normal((3, 16)).astype(np.float32), "w_fc_s": np.float32(2.0**-3),
        "out_s": np.float32(2.0**-2),
    }
    q = QONNX_DOMAIN
    nodes = [
        helper.make_node("Quant", ["x", "in_s", "z", "b8"], ["xq"], domain=q, signed=1,
                         narrow=0, rounding_mode="ROUND", name="quant_input"),
        helper.make_node("Quant", ["w_conv", "w_conv_s", "z", "b4"], ["wq"], domain=q, signed=1,
                         narrow=1, rounding_mode="ROUND", name="quant_conv_w"),
        helper.make_node("Conv", ["xq", "wq", "b_conv"], ["c"], pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Quant", ["r", "act_s", "z", "b6"], ["rq"], domain=q, signed=0,
                         narrow=0, rounding_mode="HALF_UP", name="quant_relu"),
        helper.make_node("MaxPool", ["rq"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
        helper.make_node("Quant", ["w_fc", "w_fc_s", "z", "b4"], ["wfq"], domain=q, signed=1,
                         narrow=0, rounding_mode="ROUND", name="quant_fc_w"),
        helper.make_node("Gemm", ["f", "wfq"], ["y"], transB=1, name="fc"),
        helper.make_node("Quant", ["y", "out_s", "z", "b8"], ["out"], domain=q, signed=1,
                         narrow=0, rounding_mode="FLOOR", name="quant_out"),
    ]
    shapes = {"x": [1, 2, 4, 4], "xq": [1, 2, 4, 4], "wq": [4, 2, 3, 3], "c": [1, 4, 4, 4],
              "r": [1, 4, 4, 4], "rq": [1, 4, 4, 4], "p": [1, 4, 2, 2], "f": [1, 16],
              "wfq": [3, 16], "y": [1, 3], "out": [1, 3]}
    graph = helper.make_graph(
        nodes, "brevitas_like", [helper.make_tensor_value_info("x", f32, shapes["x"])],
        [helper.make_tensor_value_info("out", f32, shapes["out"])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
        value_info=[helper.make_tensor_value_info(k, f32, v) for k, v in shapes.items()
                    if k not in ("x", "out")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid(q, 1)])


def test_brevitas_style_qonnx_imports_exactly():
    model = _brevitas_like()
    graph = import_onnx_model(model)
    ops = [n.op for n in graph.nodes]
    assert ops == ["input", "conv2d", "relu", "maxpool2d", "flatten", "dense"]
    relu = graph.node(graph.nodes[2].name)
    assert graph.out_type(relu).cpp() == "ap_ufixed<6,3,AP_RND_INF,AP_SAT>"
    rng = np.random.default_rng(4)
    for s in (1.0, 6.0):
        for _ in range(4):
            x = (rng.standard_normal((1, 2, 4, 4)) * s).astype(np.float32)
            want = _qonnx_run(model, x)[0].astype(np.float64)
            assert np.array_equal(run_graph(graph, x.astype(np.float64)).outputs[0], want)
            # and the imported model exports to an exact standard-ops ONNX model
            assert np.array_equal(run_onnx(build_onnx_model(graph), x.astype(np.float64))[0],
                                  want)


@pytest.mark.parametrize("quant", [
    {"bits": 6, "quantize_before_batchnorm": True},
    {"bits": 6, "quantize_before_batchnorm": True, "weight_khot": 2},
])
def test_zoo_digits_cnn_runs_exactly_in_qonnx(quant):
    # QONNX executes in float32, so intermediates must stay within 24 bits: the 6-bit model
    # that casts before its BatchNorms does; the 8-bit default is refused with the node named.
    import torch

    import qfx
    from qfx.zoo import digits_cnn

    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8) * 0.5
    model = qfx.quantize_model(digits_cnn(), quant, x).eval()
    graph = qfx.freeze(model, x[:1])
    _assert_qonnx_exact(graph, np.concatenate([x.numpy(), x.numpy() * 8]))
