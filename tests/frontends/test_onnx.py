"""import_onnx: a QONNX round trip is identical (==) to the frozen model, and every construct
without an exact fixed-point meaning is refused with the node's name and the reason."""

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import qfx
from qfx.backends.onnx import (
    build_qonnx_model,
    export_qonnx,
)
from qfx.backends.onnx._common import QONNX_DOMAIN
from qfx.flows.interop import import_graph_file
from qfx.frontends.onnx import OnnxImportError, import_onnx, import_onnx_model
from qfx.ir import load_graph, run_graph
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


def _assert_same(a, b, x: np.ndarray) -> None:
    ra, rb = run_graph(a, x), run_graph(b, x)
    assert np.array_equal(ra.outputs[0], rb.outputs[0])
    assert np.array_equal(ra.raw[0], rb.raw[0])


@pytest.mark.parametrize("rounding", ["RND", "RND_CONV", "TRN", "TRN_ZERO", "RND_INF",
                                      "RND_ZERO", "RND_MIN_INF"])
def test_mlp_round_trip_is_identical(rounding, tmp_path):
    torch.manual_seed(0)
    with qfx.config(QConfig(act_rounding=rounding, weight_rounding=rounding,
                            act_overflow="SAT_SYM")):
        net = _Seq(QInput(8), QLinear(10, 7), QReLU(), QBatchNorm1d(7),
                   QLinear(7, 3, bias=False), QHardTanh(-1.0, 0.5))
    x = torch.randn(64, 10)
    net.train()
    net(x)
    graph = qfx.freeze(net.eval(), x[:1])
    back = import_onnx(export_qonnx(graph, tmp_path / "m.onnx"))
    assert [n.op for n in back.nodes] == [n.op for n in graph.nodes]
    def overflow(t):  # unsigned AP_SAT_SYM is AP_SAT (QONNX has one spelling for both)
        return "SAT" if t.overflow == "SAT_SYM" and not t.signed else t.overflow

    for n1, n2 in zip(graph.nodes, back.nodes, strict=True):
        t1, t2 = graph.out_type(n1), back.out_type(n2)
        assert (t1.width, t1.int_bits, t1.signed, overflow(t1)) == \
            (t2.width, t2.int_bits, t2.signed, overflow(t2))
        if n1.op in ("dense", "batchnorm"):
            key = "weight" if n1.op == "dense" else "scale"
            assert np.array_equal(n1.params[key], n2.params[key])
    for s in (1.0, 8.0, 64.0):
        _assert_same(graph, back, (x * s).double().numpy())


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
        self.avg = QAvgPool2d(3, recip_width=8)
        self.gap = QGlobalAvgPool2d()
        self.flat = QFlatten()
        self.fc = QLinear(4, 5)

    def forward(self, x):
        x = self.qin(x)
        y = self.relu(self.add(self.bn(self.a(x)), self.b(x)))
        return self.fc(self.flat(self.gap(self.avg(self.pool(y)))))


def test_cnn_round_trip_is_identical(tmp_path):
    torch.manual_seed(3)
    net = _Residual()
    x = torch.randn(16, 3, 11, 11)
    net.train()
    net(x)
    graph = qfx.freeze(net.eval(), x[:1])
    onnx_path = export_qonnx(graph, tmp_path / "m.onnx")
    saved = import_graph_file(onnx_path, tmp_path / "m.qfx.npz")
    back = load_graph(saved)
    assert {"conv2d", "add", "batchnorm", "maxpool2d", "avgpool2d"} <= {n.op for n in back.nodes}
    for s in (1.0, 8.0, 64.0):
        _assert_same(graph, back, (x * s).double().numpy())


# ---------------------------------------------------------------------- refusals
def _quant(x: str, out: str, scale: str = "s", zp: str = "z", bits: str = "b8", **attrs):
    attrs = {"signed": 1, "narrow": 0, "rounding_mode": "ROUND", **attrs}
    return helper.make_node("Quant", [x, scale, zp, bits], [out], domain=QONNX_DOMAIN,
                            name=f"quant_{out}", **attrs)


def _model(nodes, inits=None, in_shape=(1, 4), out="y", out_shape=None):
    base = {"s": np.float32(2.0**-4), "z": np.float32(0.0), "b8": np.float32(8.0)}
    base.update(inits or {})
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(out_shape or in_shape))],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in base.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid(QONNX_DOMAIN, 1)])


def test_plain_quant_graph_imports():
    g = import_onnx_model(_model([_quant("x", "y")]))
    assert g.out_type(g.nodes[0]).cpp() == "ap_fixed<8,4,AP_RND_CONV,AP_SAT>"
    x = np.array([[0.03125, -0.09375, 100.0, 0.1]])
    assert run_graph(g, x).outputs[0].tolist() == [[0.0, -0.125, 7.9375, 0.125]]


def test_float_constants_are_taken_exactly():
    """A float32 factor such as 0.1 is a dyadic rational: it is kept exactly, not rounded."""
    g = import_onnx_model(_model([_quant("x", "q"),
                                  helper.make_node("Mul", ["q", "k"], ["y"], name="scale")],
                                 {"k": np.float32(0.1)}))
    bn = g.nodes[-1]
    assert bn.op == "batchnorm"
    assert np.ldexp(float(bn.params["scale"][0]), -bn.attrs["scale_type"].frac_bits) == \
        float(np.float32(0.1))
    x = np.array([[0.5, -1.25, 3.0, 0.0625]])
    assert np.array_equal(run_graph(g, x).outputs[0], x * float(np.float32(0.1)))


@pytest.mark.parametrize("nodes, inits, match", [
    ([_quant("x", "y")], {"s": np.float32(0.1)}, r"quant_y.*scale 0\.1.* not a power of two"),
    ([_quant("x", "y")], {"z": np.float32(3.0)}, r"quant_y.*zero point"),
    ([_quant("x", "y")], {"b8": np.float32(7.5)}, r"quant_y.*bit width"),
    ([_quant("x", "y", rounding_mode="CEIL")], None, r"quant_y.*CEIL has no ap_fixed"),
    ([_quant("x", "y", signed=0, narrow=1)], None, r"quant_y.*unsigned narrow"),
    ([_quant("x", "y", bits="b1")], {"b1": np.float32(1.0)}, r"quant_y.*bipolar"),
    ([_quant("x", "y", scale="sv")], {"sv": np.full(4, 2.0**-4, dtype=np.float32)},
     r"quant_y.*per-channel"),
    ([_quant("x", "q"), helper.make_node("Softmax", ["q"], ["y"], name="soft")], None,
     r"node 'soft' \(Softmax\): a float Softmax followed by a Quant rounds the exact softmax"),
    ([helper.make_node("Relu", ["x"], ["y"], name="r")], None,
     r"node 'r' \(Relu\): graph input 'x' must be quantized"),
    ([_quant("x", "q"), helper.make_node("Mul", ["q", "k"], ["y"], name="scale")],
     {"k": np.array([2.0**60, 2.0**-60, 1, 1], dtype=np.float32)},
     r"node 'scale' \(Mul\).*more than 62 bits"),
])
def test_unrepresentable_graphs_are_refused_with_node_and_reason(nodes, inits, match):
    with pytest.raises(OnnxImportError, match=match):
        import_onnx_model(_model(nodes, inits))


def test_float_batchnorm_and_odd_average_pools_are_refused():
    bn = _model([_quant("x", "q"),
                 helper.make_node("BatchNormalization", ["q", "g", "bb", "m", "v"], ["y"],
                                  name="bn")],
                {k: np.ones(2, dtype=np.float32) for k in ("g", "bb", "m", "v")},
                in_shape=(1, 2, 3, 3))
    with pytest.raises(OnnxImportError, match=r"node 'bn'.*BatchNormalization.*not exact"):
        import_onnx_model(bn)
    pool = _model([_quant("x", "q"),
                   helper.make_node("AveragePool", ["q"], ["y"], kernel_shape=[3, 3],
                                    name="avg")], in_shape=(1, 2, 3, 3), out_shape=(1, 2, 1, 1))
    with pytest.raises(OnnxImportError, match=r"node 'avg'.*area 9 is not a power of two"):
        import_onnx_model(pool)


def test_malformed_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07this is not a protobuf\xff\xff")
    with pytest.raises(OnnxImportError, match="junk.onnx"):
        import_onnx(junk)
    with pytest.raises(FileNotFoundError):
        import_onnx(tmp_path / "missing.onnx")
    # a structurally invalid model: a node reads a tensor nobody produces
    bad = _model([helper.make_node("Relu", ["nowhere"], ["y"], name="r")])
    with pytest.raises(OnnxImportError, match="invalid ONNX model"):
        import_onnx_model(bad)
    # unknown custom domain
    other = _model([helper.make_node("Quant", ["x", "s", "z", "b8"], ["y"], domain="acme",
                                     name="acme_q")])
    other.opset_import.append(helper.make_opsetid("acme", 1))
    with pytest.raises(OnnxImportError, match=r"acme_q.*acme\.Quant"):
        import_onnx_model(other)


def test_import_refuses_accumulators_wider_than_53_bits():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 64)).astype(np.float32)
    m = _model([_quant("x", "q", bits="b30"), _quant("w", "wq", scale="ws", bits="b30"),
                helper.make_node("MatMul", ["q", "wt"], ["y"], name="mm")],
               {"b30": np.float32(30.0), "w": w, "ws": np.float32(2.0**-10),
                "wt": w.T.copy()}, in_shape=(1, 64), out_shape=(1, 3))
    with pytest.raises(OnnxImportError, match=r"node 'mm' \(MatMul\).*accumulator needs"):
        import_onnx_model(m)


def test_qonnx_export_then_import_keeps_the_batch_free_shapes():
    torch.manual_seed(1)
    net = _Seq(QInput(8), QConv2d(2, 3, 3), QReLU(), QFlatten(), QLinear(27, 2))
    x = torch.randn(8, 2, 5, 5)
    net.train()
    net(x)
    graph = qfx.freeze(net.eval(), x[:1])
    back = import_onnx_model(build_qonnx_model(graph, batch_size=4))
    assert back.edges[back.inputs[0]].shape == (2, 5, 5)
    _assert_same(graph, back, (x * 5).double().numpy())
