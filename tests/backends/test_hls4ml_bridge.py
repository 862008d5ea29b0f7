"""hls4ml as a backend: every precision set from the IR, compiled with hls4ml's g++ flow, and
``predict`` equal (==) to the frozen executor; layers hls4ml cannot compute exactly are
refused by name before anything is compiled."""

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.backends.hls4ml import (
    Hls4mlExportError,
    build_hls4ml_model,
    export_hls4ml,
)
from qfx.fixed.fixed_type import FixedType
from qfx.ir.graph import Edge, Graph, Node
from qfx.nn import (
    QAdd,
    QAvgPool2d,
    QBatchNorm1d,
    QBatchNorm2d,
    QConfig,
    QConv2d,
    QFlatten,
    QHardTanh,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
)


class _Seq(nn.Sequential):
    pass


def _frozen(net: nn.Module, x: torch.Tensor) -> Graph:
    net.train()
    net(x)
    return qfx.freeze(net.eval(), x[:1])


def test_mlp_with_wrapping_outputs_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    with qfx.config(QConfig(act_overflow="WRAP", act_rounding="RND_CONV", act_width=7,
                            weight_khot=2, bn_scale_khot=2)):  # K-hot: multiplier-free values
        net = _Seq(QInput(8), QLinear(10, 7), QReLU(), QBatchNorm1d(7), QLinear(7, 3))
    x = torch.randn(64, 10)
    graph = _frozen(net, x)
    xs = np.concatenate([x.double().numpy(), x.double().numpy() * 16])  # wrap and saturate
    report = export_hls4ml(graph, tmp_path / "mlp", xs)
    assert report.bit_exact, report.summary()
    assert report.mismatches == 0 and report.first_mismatch is None
    assert np.array_equal(report.outputs, report.reference)
    assert report.outputs.shape == (128, 3)
    assert (tmp_path / "mlp" / "firmware").is_dir()
    # every result type carries the IR's modes, the accumulators are the IR's exact ones
    fc = graph.nodes[1]
    prec = report.layers[fc.name]
    out_i = graph.out_type(fc).int_bits
    assert prec["result"] == f"ap_fixed<7,{out_i},AP_RND_CONV,AP_WRAP,0>"
    acc = fc.attrs["acc_type"]
    assert prec["accum"] == f"ap_fixed<{acc.width},{acc.int_bits},AP_TRN,AP_WRAP,0>"
    # the outputs really exercised overflow (otherwise WRAP would not be tested)
    res = qfx.run_graph(graph, xs)
    assert sum(res.overflow[n.name] for n in graph.nodes[1:]) > 0
    assert {graph.out_type(n).overflow for n in graph.nodes} == {"WRAP"}


class _ResidualCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.qin = QInput(6)
        self.a = QConv2d(2, 4, 3, padding=1)
        self.bn = QBatchNorm2d(4)
        self.r = QReLU()
        self.b = QConv2d(4, 4, 1, act_width=6)
        self.add = QAdd(act_width=7)
        self.pool = QMaxPool2d(2, ceil_mode=True)
        self.avg = QAvgPool2d((1, 2), stride=(1, 1))
        self.flat = QFlatten()
        self.fc = QLinear(24, 3)

    def forward(self, x):
        r = self.r(self.bn(self.a(self.qin(x))))
        return self.fc(self.flat(self.avg(self.pool(self.add(r, self.b(r))))))


def test_cnn_with_residual_pooling_and_flatten_is_bit_exact(tmp_path):
    torch.manual_seed(3)
    net = _ResidualCNN()
    x = torch.randn(64, 2, 5, 5)
    graph = _frozen(net, x)
    ops = [n.op for n in graph.nodes]
    assert ops == ["input", "conv2d", "batchnorm", "relu", "conv2d", "add", "maxpool2d",
                   "avgpool2d", "flatten", "dense"]
    report = export_hls4ml(graph, tmp_path / "cnn", samples=48)
    assert report.bit_exact, report.summary()
    assert report.inputs.shape == (48, 2, 5, 5)
    assert "bit-exact" in report.summary()


def _graph_with(module: nn.Module, x: torch.Tensor) -> Graph:
    torch.manual_seed(4)
    return _frozen(_Seq(QInput(8), *module), x)


@pytest.mark.parametrize("layers, shape, match", [
    ([QLinear(4, 4), QHardTanh(-1.0, 0.5)], (4,), r"layer '.*' \(hardtanh\).*clamp"),
    ([QConv2d(4, 4, 3, groups=2)], (4, 6, 6), r"\(conv2d\).*groups=2"),
    ([QConv2d(2, 2, 3, dilation=2)], (2, 6, 6), r"\(conv2d\).*dilation"),
    ([QAvgPool2d(3)], (2, 6, 6), r"\(avgpool2d\).*not a power of two"),
])
def test_inexact_layers_are_refused_by_name(layers, shape, match, tmp_path):
    graph = _graph_with(layers, torch.randn(16, *shape))
    with pytest.raises(Hls4mlExportError, match=match):
        build_hls4ml_model(graph, tmp_path / "p")


def test_binary_ops_are_refused_by_name(tmp_path):
    g = Graph(inputs=["x"], outputs=["t"])
    g.add_edge(Edge("x", (2,), FixedType(8, 0, False)))
    g.add_edge(Edge("q", (2,), FixedType(8, 0, False, "RND", "SAT")))
    g.add_edge(Edge("t", (6,), FixedType(2, 2)))
    g.add_node(Node("q", "input", ["x"], "q"))
    g.add_node(Node("t", "thermometer", ["q"], "t",
                    {"threshold_type": FixedType(8, 0, False), "levels": 3},
                    {"thresholds": np.array([64, 128, 192], dtype=np.int64)}))
    with pytest.raises(Hls4mlExportError, match=r"'t' \(thermometer\): op 'thermometer' has no"):
        build_hls4ml_model(g, tmp_path / "p")


def test_wrap_sm_and_multi_output_graphs_are_refused(tmp_path):
    g = Graph(inputs=["x"], outputs=["q"])
    g.add_edge(Edge("x", (3,), FixedType(8, 3)))
    g.add_edge(Edge("q", (3,), FixedType(8, 3, overflow="WRAP_SM")))
    g.add_node(Node("q", "input", ["x"], "q"))
    with pytest.raises(Hls4mlExportError, match=r"'q'.*AP_WRAP_SM"):
        build_hls4ml_model(g, tmp_path / "p")
    g.outputs.append("x")
    with pytest.raises(Hls4mlExportError, match="one input and one output"):
        build_hls4ml_model(g, tmp_path / "p")


@pytest.mark.parametrize("backend", ["Vitis", "Vivado"])
def test_the_hls4ml_graph_keeps_every_precision(backend, tmp_path):
    """Built but not compiled: the layer list, configs and types hls4ml ends up with."""
    torch.manual_seed(5)
    net = _Seq(QInput(8), QConv2d(2, 3, 3), QBatchNorm2d(3), QReLU(), QFlatten(),
               QLinear(48, 2))
    graph = _frozen(net, torch.randn(16, 2, 6, 6))
    model, build = build_hls4ml_model(graph, tmp_path / "p", backend=backend)
    names = [layer.name for layer in model.get_layers()]
    assert names[0] == graph.nodes[0].name
    for node in graph.nodes[1:]:
        if node.op != "flatten":
            assert node.name in names
    dense = next(layer for layer in model.get_layers() if layer.class_name == "Dense")
    t = graph.out_type(graph.nodes[-1])
    p = dense.get_output_variable().type.precision
    assert (p.width, p.integer, str(p.rounding_mode), str(p.saturation_mode)) == \
        (t.width, t.int_bits, t.rounding, t.overflow)
    # the flattened channels-last order is absorbed into the dense weights
    assert build.tensors[graph.nodes[4].output].perm is not None
