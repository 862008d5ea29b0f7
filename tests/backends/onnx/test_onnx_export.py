"""export_onnx: onnxruntime's outputs equal (==) the frozen executor's, for every ap_fixed cast
mode and for MLP/CNN/residual models, including inputs scaled to saturate and wrap, and for
accumulators at the 53-bit limit."""

import math
import os

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import qfx
from qfx.backends.onnx import OnnxExportError, build_onnx_model, export_onnx, run_onnx
from qfx.fixed.fixed_type import OVERFLOW_MODES, ROUNDING_MODES, FixedType
from qfx.flows.interop import export_graph_file
from qfx.ir import run_graph, save_graph
from qfx.ir.graph import Edge, Graph, Node
from qfx.ir.ops import OPS, OpSpec
from qfx.nn import (
    QAdd,
    QAvgPool2d,
    QBatchNorm1d,
    QBatchNorm2d,
    QConfig,
    QConv2d,
    QFlatten,
    QGlobalAvgPool2d,
    QHardTanh,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
)


class _Seq(nn.Sequential):
    pass


def _assert_onnx_exact(graph: Graph, xs: list[np.ndarray]) -> None:
    model = build_onnx_model(graph)
    for x in xs:
        got = run_onnx(model, x)
        want = run_graph(graph, [x] * len(graph.inputs)).outputs if len(graph.inputs) > 1 else \
            run_graph(graph, x).outputs
        for g, w in zip(got, want, strict=True):
            assert g.dtype == np.float64 and g.shape == w.shape
            assert np.array_equal(g, w), f"{(g != w).sum()} values differ"


def _frozen(net: nn.Module, x: torch.Tensor, train_steps: int = 1) -> Graph:
    net.train()
    for _ in range(train_steps):
        net(x)
    return qfx.freeze(net.eval(), x[:1])


def _cast_graph(src: FixedType | None, widths) -> tuple[Graph, list[FixedType]]:
    """One cast node per (rounding, overflow, N) combination, all reading the same edge."""
    g = Graph(inputs=["x"], outputs=[])
    g.add_edge(Edge("x", (1,), src or FixedType(53, 26)))
    feed = "x"
    if src is not None:  # an internal edge on src's grid
        g.add_edge(Edge("s", (1,), src))
        g.add_node(Node("s", "input", ["x"], "s"))
        feed = "s"
    types = []
    for w, i, signed in widths:
        for r in ROUNDING_MODES:
            for o in OVERFLOW_MODES:
                if o == "WRAP_SM" and not signed:
                    continue
                for n in sorted({0, 1, min(2, w), w} if o in ("WRAP", "WRAP_SM") else {0}):
                    t = FixedType(w, i, signed, r, o, n)
                    name = f"q{len(types)}"
                    g.add_edge(Edge(name, (1,), t))
                    g.add_node(Node(name, "input", [feed], name))
                    g.outputs.append(name)
                    types.append(t)
    return g, types


def _tricky_values(lsb: float, width: int, rng: np.random.Generator) -> np.ndarray:
    """Ties, near-ties (the 0.5 - 2**-54 trap), huge, tiny, infinite and signed zeros."""
    k = rng.integers(-(1 << min(width + 2, 60)), 1 << min(width + 2, 60), 400).astype(float)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e-300, -1e-300, 1e300,
                        -1e300, 0.5 - 2**-54, -(0.5 - 2**-54), 2.0**60, -(2.0**60), 1.5, -1.5,
                        2.5, -2.5])
    v = np.concatenate([k * lsb, (k + 0.5) * lsb, (k + 0.5) * lsb * (1 - 2**-53),
                        (k + 0.5) * lsb * (1 + 2**-52),
                        rng.standard_normal(400) * lsb * 2.0 ** rng.integers(-3, width + 4, 400),
                        special, special * lsb])
    return v.reshape(-1, 1)


@pytest.mark.parametrize("width, int_bits, signed", [
    (1, 1, True), (1, 0, False), (5, 2, True), (5, 7, False), (12, -3, True), (53, 20, True),
    (52, 60, False),
])
def test_every_input_cast_mode_is_exact(width, int_bits, signed):
    """Arbitrary doubles through every rounding x overflow x saturation-bits combination."""
    graph, types = _cast_graph(None, [(width, int_bits, signed)])
    assert len(types) >= 7 * 3
    rng = np.random.default_rng(width)
    x = _tricky_values(math.ldexp(1.0, int_bits - width), width, rng)
    model = build_onnx_model(graph)
    got = run_onnx(model, x)
    want = run_graph(graph, x).outputs
    for t, g, w in zip(types, got, want, strict=True):
        assert np.array_equal(g, w), f"{t.cpp()}: {x[g != w][:3]} -> {g[g != w][:3]} != " \
                                     f"{w[g != w][:3]}"


@pytest.mark.parametrize("src, widths", [
    (FixedType(20, 8), [(6, 3, True), (6, 3, False), (14, 6, True)]),
    (FixedType(16, 3), [(4, -2, True), (5, 9, True)]),
    (FixedType(12, 2, False), [(12, 2, True), (8, 8, False)]),
    (FixedType(8, 3), [(8, 3, True)]),  # SAT_SYM turns the minimum into -max even here
])
def test_every_cast_from_a_fixed_point_grid_is_exact(src, widths):
    """Casts between fixed-point formats, every source raw value near both range ends."""
    graph, types = _cast_graph(src, widths)
    rng = np.random.default_rng(1)
    k = np.concatenate([np.arange(src.raw_min, src.raw_min + 200), np.arange(-200, 200),
                        np.arange(src.raw_max - 200, src.raw_max + 1),
                        rng.integers(src.raw_min, src.raw_max, 2000)])
    x = np.ldexp(k.astype(np.float64), -src.frac_bits).reshape(-1, 1)
    got = run_onnx(build_onnx_model(graph), x)
    for t, g, w in zip(types, got, run_graph(graph, x).outputs, strict=True):
        assert np.array_equal(g, w), t.cpp()


def test_identity_casts_emit_no_arithmetic():
    g = Graph(inputs=["x"], outputs=["b"])
    g.add_edge(Edge("x", (3,), FixedType(8, 3)))
    g.add_edge(Edge("a", (3,), FixedType(8, 3)))
    g.add_edge(Edge("b", (3,), FixedType(10, 4, rounding="RND", overflow="SAT")))
    g.add_node(Node("a", "input", ["x"], "a"))
    g.add_node(Node("b", "input", ["a"], "b"))  # contains a: nothing to round or saturate
    model = build_onnx_model(g)
    b_nodes = [n for n in model.graph.node if n.output[0] == "b"]
    assert [n.op_type for n in b_nodes] == ["Identity"]


@pytest.mark.parametrize("then", ["saturate", "hardtanh"])
def test_a_relu_followed_by_a_clamp_loads_in_onnxruntime(then):
    # onnxruntime fuses Relu into a following Clip and refuses float64 bounds there ("Unexpected
    # data type for Clip 'min' input"): a relu saturated onto a grid it is already on, or a
    # hardtanh right after a relu, made a model onnxruntime would not load
    g = Graph(inputs=["x"], outputs=["c"])
    g.add_edge(Edge("x", (5,), FixedType(8, 8)))
    g.add_edge(Edge("a", (5,), FixedType(8, 8)))
    g.add_node(Node("a", "input", ["x"], "a"))
    if then == "hardtanh":  # the clamp right on the relu's output
        g.add_edge(Edge("r", (5,), FixedType(8, 8)))
        g.add_edge(Edge("c", (5,), FixedType(8, 8)))
        g.add_node(Node("r", "relu", ["a"], "r"))
        g.add_node(Node("c", "hardtanh", ["r"], "c", attrs={
            "clamp_type": FixedType(8, 8), "min_raw": 2, "max_raw": 12}))
    else:  # an integer grid: no scaling, no rounding, only the saturation
        g.add_edge(Edge("r", (5,), FixedType(4, 4, signed=False, overflow="SAT")))
        g.add_edge(Edge("c", (5,), FixedType(4, 4, signed=False, overflow="SAT")))
        g.add_node(Node("r", "relu", ["a"], "r"))
        g.add_node(Node("c", "input", ["r"], "c"))
    x = np.array([[-3.0, 1.0, 7.0, 13.0, 40.0]])
    assert np.array_equal(run_onnx(build_onnx_model(g), [x])[0], run_graph(g, x).outputs[0])


@pytest.mark.parametrize("overflow", ["SAT", "WRAP", "SAT_SYM", "SAT_ZERO"])
def test_mlp_is_exact(overflow):
    torch.manual_seed(0)
    cfg = QConfig(act_overflow=overflow, weight_overflow=overflow, act_width=6, weight_width=5)
    with qfx.config(cfg):
        net = _Seq(QInput(8), QLinear(10, 7), QReLU(), QBatchNorm1d(7),
                   QLinear(7, 3, bias=False), QHardTanh(-1.0, 0.75), QLinear(3, 2))
    x = torch.randn(64, 10)
    graph = _frozen(net, x)
    _assert_onnx_exact(graph, [(x * s).double().numpy() for s in (1.0, 8.0, 64.0)])


@pytest.mark.parametrize("groups, stride, padding, dilation", [
    (1, 1, 1, 1), (4, 2, 0, 1), (8, 1, 2, 2)])
def test_cnn_with_batchnorm_and_pooling_is_exact(groups, stride, padding, dilation):
    torch.manual_seed(1)
    with qfx.config(QConfig(per_channel_weights=True, act_overflow="WRAP")):
        net = _Seq(QInput(8, signed=False), QConv2d(8, 8, 3, stride, padding, dilation, groups),
                   QBatchNorm2d(8), QReLU(), QMaxPool2d(2), QConv2d(8, 4, 1, bias=False),
                   QAvgPool2d(2), QFlatten())
        x = torch.rand(8, 8, 12, 12)
        net.append(QLinear(net(x).shape[1], 3))
    graph = _frozen(net, x)
    _assert_onnx_exact(graph, [(x * s).double().numpy() for s in (1.0, 8.0, 64.0)])


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.qin = QInput(8)
        self.a = QConv2d(3, 4, 3, padding=1)
        self.bn = QBatchNorm2d(4)
        self.b = QConv2d(3, 4, 1, act_width=5)
        self.add = QAdd(act_width=7)
        self.relu = QReLU()
        self.pool = QMaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.avg = QAvgPool2d(3)  # 1/9: a fixed-point reciprocal
        self.gap = QGlobalAvgPool2d()
        self.flat = QFlatten()
        self.fc = QLinear(4, 5)

    def forward(self, x):
        x = self.qin(x)
        y = self.relu(self.add(self.bn(self.a(x)), self.b(x)))
        return self.fc(self.flat(self.gap(self.avg(self.pool(y)))))


def test_residual_cnn_with_ceil_mode_and_reciprocal_pooling_is_exact():
    torch.manual_seed(3)
    net = _Residual()
    x = torch.randn(16, 3, 11, 11)
    graph = _frozen(net, x, train_steps=2)
    ops = [n.op for n in graph.nodes]
    assert {"add", "batchnorm", "maxpool2d", "avgpool2d"} <= set(ops)
    assert any("recip" in n.params for n in graph.nodes if n.op == "avgpool2d")
    _assert_onnx_exact(graph, [(x * s).double().numpy() for s in (1.0, 8.0, 64.0)])


def test_zoo_models_are_exact():
    from qfx.zoo import get_model

    torch.manual_seed(5)
    x = torch.rand(8, 1, 8, 8)
    fixed = _frozen(qfx.quantize_model(get_model("digits_cnn")), x * 16)
    _assert_onnx_exact(fixed, [(x * 16).double().numpy(), (x * 64).double().numpy()])
    bnn = _frozen(get_model("digits_bnn"), x)
    assert {"thermometer", "binary_conv2d", "threshold", "binary_dense"} <= \
        {n.op for n in bnn.nodes}
    _assert_onnx_exact(bnn, [x.double().numpy(), (x * 3 - 1).double().numpy()])


def test_khot_weights_and_scales_are_exact():
    torch.manual_seed(6)
    with qfx.config(QConfig(weight_khot=2, bn_scale_khot=2)):
        net = _Seq(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                   QFlatten(), QLinear(64, 3))
    x = torch.randn(16, 2, 4, 4)
    graph = _frozen(net, x)
    assert any("weight_digits" in n.params for n in graph.nodes)
    _assert_onnx_exact(graph, [(x * s).double().numpy() for s in (1.0, 16.0)])


def test_binarized_layers_are_exact():
    """Thermometer input, binary conv (-1 padding, scale, groups, stride), thresholds of both
    directions (BatchNorm scales of either sign), binary dense with scale."""
    from qfx.nn.binary import QBinaryConv2d, QBinaryLinear, QSign, QThermometer

    torch.manual_seed(0)
    net = _Seq(QInput(8, signed=False), QThermometer(3),
               QBinaryConv2d(6, 8, 3, padding=1, scale=True), QBatchNorm2d(8), QSign(),
               QMaxPool2d(2), QBinaryConv2d(8, 8, 3, stride=2, groups=2), QBatchNorm2d(8),
               QSign(), QFlatten(), QBinaryLinear(8, 6, scale=True), QBatchNorm1d(6), QSign(),
               QLinear(6, 3))
    x = torch.rand(32, 2, 8, 8)
    net.train()
    net(x)
    with torch.no_grad():
        for m in net:
            if isinstance(m, (QBatchNorm1d, QBatchNorm2d)):
                m.weight[::2] *= -1
    graph = _frozen(net, x)
    directions = np.concatenate([n.params["direction"] for n in graph.nodes
                                 if n.op == "threshold"])
    assert set(directions.tolist()) == {-1, 1}
    _assert_onnx_exact(graph, [(x * s).double().numpy() for s in (1.0, 0.5, 2.0)])


def _wide_graph(conv: bool) -> Graph:
    """A layer whose accumulator is exactly 53 bits wide, with extreme weights."""
    x_t, w_t = FixedType(20, 4), FixedType(28, 3)
    rng = np.random.default_rng(7)
    g = Graph(inputs=["x"], outputs=["y"])
    if conv:
        shape, w_shape = (8, 5, 5), (3, 8, 3, 3)
    else:
        shape, w_shape = (64,), (4, 64)
    w = rng.choice([w_t.raw_min, w_t.raw_max, w_t.raw_max - 1, -(1 << 20) - 3],
                   size=w_shape).astype(np.int64)
    lo = (np.minimum(w * x_t.raw_min, w * x_t.raw_max)).reshape(w.shape[0], -1).sum(1).min()
    hi = (np.maximum(w * x_t.raw_min, w * x_t.raw_max)).reshape(w.shape[0], -1).sum(1).max()
    acc = FixedType.for_raw_range(int(lo), int(hi), x_t.frac_bits + w_t.frac_bits)
    assert acc.width == 53
    g.add_edge(Edge("x", shape, x_t))
    g.add_edge(Edge("q", shape, x_t))
    g.add_node(Node("q", "input", ["x"], "q"))
    out_t = FixedType(53, acc.int_bits, rounding="RND_CONV", overflow="SAT")
    if conv:
        g.add_edge(Edge("y", (3, 5, 5), out_t))
        g.add_node(Node("y", "conv2d", ["q"], "y",
                        {"weight_type": w_t, "acc_type": acc, "stride": [1, 1],
                         "padding": [1, 1], "dilation": [1, 1], "groups": 1}, {"weight": w}))
    else:
        g.add_edge(Edge("y", (4,), out_t))
        g.add_node(Node("y", "dense", ["q"], "y", {"weight_type": w_t, "acc_type": acc},
                        {"weight": w}))
    return g


@pytest.mark.parametrize("conv", [False, True])
def test_53_bit_accumulators_are_exact_in_onnxruntime(conv):
    """Partial sums near 2**52 with mixed signs: any inexact kernel would show here."""
    g = _wide_graph(conv)
    x_t = g.edges["x"].type
    rng = np.random.default_rng(8)
    shape = g.edges["x"].shape
    x = np.ldexp(rng.choice([x_t.raw_min, x_t.raw_max, 1, -1, 12345], size=(32, *shape))
                 .astype(np.float64), -x_t.frac_bits)
    res = run_graph(g, x)
    assert np.abs(res.raw[0]).max() > 2**45  # really wide values
    assert np.array_equal(run_onnx(build_onnx_model(g), x)[0], res.outputs[0])


def test_export_writes_atomically_with_ir_names(tmp_path):
    torch.manual_seed(2)
    net = _Seq(QInput(8), QLinear(6, 4), QReLU(), QLinear(4, 2))
    x = torch.randn(32, 6)
    graph = _frozen(net, x)
    path = export_onnx(graph, tmp_path / "sub" / "model.onnx", opset=13)
    assert sorted(os.listdir(path.parent)) == ["model.onnx"]  # no temporary left behind
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 13
    names = {o for n in model.graph.node for o in n.output}
    assert {e for e in graph.edges if e not in graph.inputs} <= names
    assert [i.name for i in model.graph.input] == graph.inputs
    assert [o.name for o in model.graph.output] == graph.outputs
    assert np.array_equal(run_onnx(path, x.double().numpy())[0],
                          run_graph(graph, x.double().numpy()).outputs[0])
    # the CLI helper takes a saved frozen model
    frozen = save_graph(graph, tmp_path / "m.qfx.npz")
    out = export_graph_file(frozen, tmp_path / "cli.onnx", fmt="onnx")
    assert onnx.load(str(out)).graph.node


def test_unsanitary_names_become_identifiers():
    g = Graph(inputs=["in put"], outputs=['q; system("x")'])
    g.add_edge(Edge("in put", (2,), FixedType(8, 3)))
    g.add_edge(Edge('q; system("x")', (2,), FixedType(8, 3, rounding="RND")))
    g.add_node(Node('q; system("x")', "input", ["in put"], 'q; system("x")'))
    model = build_onnx_model(g)
    assert model.graph.input[0].name == "in_put"
    assert model.graph.output[0].name == "q__system__x__"
    x = np.array([[0.3, -9.1]])
    assert np.array_equal(run_onnx(model, x)[0], run_graph(g, x).outputs[0])


def test_unsupported_op_is_refused_with_node_and_op(monkeypatch):
    class Mystery(OpSpec):  # an op the IR knows but the ONNX exporter has no rule for
        name = "mystery"

    monkeypatch.setitem(OPS, "mystery", Mystery())
    g = Graph(inputs=["x"], outputs=["m"])
    g.add_edge(Edge("x", (2,), FixedType(8, 3)))
    g.add_edge(Edge("q", (2,), FixedType(8, 3)))
    g.add_edge(Edge("m", (2,), FixedType(8, 3)))
    g.add_node(Node("q", "input", ["x"], "q"))
    g.add_node(Node("m", "mystery", ["q"], "m"))
    with pytest.raises(OnnxExportError, match=r"node 'm' \(mystery\).*op 'mystery'"):
        build_onnx_model(g)


def test_bad_opset_is_refused():
    g, _ = _cast_graph(None, [(4, 2, True)])
    with pytest.raises(OnnxExportError, match="opset"):
        build_onnx_model(g, opset=9)
