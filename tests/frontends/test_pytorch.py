"""Every qfx layer's eval output equals the frozen executor bit for bit (`==` on raw ints),
including inputs scaled to force saturation and wrap."""

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.frontends.pytorch import freeze
from qfx.ir import load_graph, run_graph, save_graph
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


def _assert_exact(model: nn.Module, x: torch.Tensor, scales=(1.0, 8.0, 64.0)):
    """Freeze, then compare eval outputs with the executor on x at several scales."""
    model.eval()
    graph = freeze(model, x[:1])
    out_t = graph.edges[graph.outputs[0]].type
    for s in scales:
        xs = x * s
        with torch.no_grad():
            expected = model(xs)
        res = run_graph(graph, xs)
        assert expected.dtype == torch.float64
        assert np.array_equal(out_t.to_int(expected).numpy(), res.raw[0]), f"scale {s}"
        assert np.array_equal(expected.numpy(), res.outputs[0])
    return graph


def _calibrated(model: nn.Module, x: torch.Tensor) -> nn.Module:
    with qfx.calibration(model):
        model(x)
    return model


class _Seq(nn.Sequential):
    pass


@pytest.mark.parametrize("overflow", ["SAT", "WRAP", "SAT_SYM", "SAT_ZERO"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_dense_layers_are_exact(overflow, per_channel):
    torch.manual_seed(0)
    cfg = QConfig(act_overflow=overflow, weight_overflow=overflow, per_channel_weights=per_channel,
                  act_width=6, weight_width=5)
    with qfx.config(cfg):
        net = _Seq(QInput(8), QLinear(10, 7), QReLU(), QLinear(7, 3, bias=False),
                   QHardTanh(-1.0, 0.75), QLinear(3, 2))
    x = torch.randn(64, 10)
    _assert_exact(_calibrated(net, x), x)


@pytest.mark.parametrize("groups, stride, padding, dilation", [
    (1, 1, 1, 1), (1, 2, 0, 1), (4, 1, 1, 1), (8, 1, 2, 2), (2, 2, 1, 1)])
def test_conv_layers_are_exact(groups, stride, padding, dilation):
    torch.manual_seed(1)
    with qfx.config(QConfig(per_channel_weights=True, act_overflow="WRAP")):
        net = _Seq(QInput(8, signed=False), QConv2d(8, 8, 3, stride, padding, dilation, groups),
                   QBatchNorm2d(8), QReLU(), QMaxPool2d(2), QConv2d(8, 4, 1, bias=False),
                   QAvgPool2d(2), QFlatten())
        x = torch.rand(16, 8, 12, 12)
        net.append(QLinear(net(x).shape[1], 3))
    net.train()
    net(x)  # BN statistics and first-batch initialisation of the binary points
    _assert_exact(net.eval(), x)


def test_batchnorm1d_avgpool_non_power_of_two_and_global_pool_are_exact():
    torch.manual_seed(2)
    net = _Seq(QInput(8), QConv2d(3, 6, 3), QAvgPool2d(3), QBatchNorm2d(6), QReLU(),
               QGlobalAvgPool2d(), QFlatten(), QLinear(6, 5), QBatchNorm1d(5))
    x = torch.randn(32, 3, 11, 11)
    net.train()
    for _ in range(3):
        net(x)
    graph = _assert_exact(net.eval(), x)
    ops = [n.op for n in graph.nodes]
    assert ops.count("avgpool2d") == 2 and "batchnorm" in ops
    pools = [n for n in graph.nodes if n.op == "avgpool2d"]
    assert "recip" in pools[0].params  # 1/9 as a fixed-point constant
    assert "recip" not in pools[1].params or pools[1].attrs.get("shift") is None


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.qin = QInput(8)
        self.a = QConv2d(4, 4, 3, padding=1)
        self.b = QConv2d(4, 4, 1, act_width=5)
        self.add = QAdd(act_width=7)
        self.relu = QReLU()

    def forward(self, x):
        x = self.qin(x)
        return self.relu(self.add(self.a(x), self.b(x)))


def test_residual_add_of_different_formats_is_exact():
    torch.manual_seed(3)
    net = _Residual()
    x = torch.randn(8, 4, 6, 6)
    net.train()
    net(x)
    with torch.no_grad():
        net.b.output_quantizer.log2_lsb.fill_(-1.0)  # force very different binary points
        net.a.output_quantizer.log2_lsb.fill_(-6.0)
    graph = _assert_exact(net.eval(), x)
    add = next(n for n in graph.nodes if n.op == "add")
    ta, tb = (graph.edges[i].type for i in add.inputs)
    assert ta.frac_bits != tb.frac_bits
    assert add.attrs["acc_type"] == qfx.FixedType.add(ta, tb)


def test_freeze_save_load_round_trip_is_identical(tmp_path):
    torch.manual_seed(4)
    net = _Seq(QInput(8), QConv2d(2, 4, 3), QBatchNorm2d(4), QReLU(), QFlatten(), QLinear(64, 3))
    x = torch.randn(16, 2, 6, 6)
    net.train()
    net(x)
    net.eval()
    graph = freeze(net, x[:1])
    path = save_graph(graph, tmp_path / "model.qfx.npz")
    loaded = load_graph(path)
    assert loaded.summary() == graph.summary()
    a, b = run_graph(graph, x, trace=True), run_graph(loaded, x, trace=True)
    assert np.array_equal(a.raw[0], b.raw[0])
    assert a.trace.keys() == b.trace.keys()
    for k in a.trace:
        assert np.array_equal(a.trace[k], b.trace[k])
    for n1, n2 in zip(graph.nodes, loaded.nodes, strict=True):
        assert n1.attrs == n2.attrs
        for k in n1.params:
            assert np.array_equal(n1.params[k], n2.params[k])


def test_load_rejects_non_models(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a qfx frozen model"):
        load_graph(bad)
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "missing.npz")


def test_overflow_statistics_count_saturated_values():
    net = _Seq(QInput(8, signed=True), QLinear(4, 4))
    x = torch.randn(256, 4)
    _calibrated(net, x)
    net.eval()
    graph = freeze(net, x[:1])
    calm = run_graph(graph, x)
    loud = run_graph(graph, x * 100)
    name = graph.nodes[0].name
    assert loud.overflow[name] > calm.overflow[name]
    assert loud.elements[name] == x.numel()


def test_trace_names_every_node():
    net = _Seq(QInput(8), QLinear(4, 4), QReLU())
    x = torch.randn(32, 4)
    _calibrated(net, x)
    graph = freeze(net.eval(), x[:1])
    res = run_graph(graph, x, trace=True)
    assert list(res.trace) == [n.name for n in graph.nodes]
    assert res.trace[graph.nodes[-1].name].dtype == np.int64


def test_freeze_requires_an_input_quantizer():
    net = _Seq(QLinear(4, 2))
    _calibrated(net, torch.randn(8, 4))
    with pytest.raises(ValueError, match="QInput"):
        freeze(net, torch.randn(1, 4))


def test_too_wide_accumulators_fail_loudly():
    with qfx.config(QConfig(weight_width=30, input_width=30)):
        net = _Seq(QInput(), QLinear(64, 2))
    _calibrated(net, torch.randn(16, 64))
    with pytest.raises(ValueError, match="more than 53 bits"):
        freeze(net.eval(), torch.randn(1, 64))


def test_overflow_report_table_names_the_worst_layer():
    from qfx.ir import overflow_report

    net = _Seq(QInput(8), QLinear(4, 4), QReLU())
    x = torch.randn(300, 4)
    _calibrated(net, x)
    graph = freeze(net.eval(), x[:1])
    report = overflow_report(graph, x * 50, batch_size=128)
    first = graph.nodes[0].name
    assert report.total[first] == x.numel()
    assert report.overflowed[first] > 0
    assert report.worst()[1] > 0
    assert first in str(report) and "saturated" in str(report)


def test_conv_handing_its_exact_accumulator_to_batchnorm_is_exact():
    torch.manual_seed(6)
    net = _Seq(QInput(8), QConv2d(3, 4, 3, quantize_output=False), QBatchNorm2d(4), QReLU(),
               QFlatten(), QLinear(64, 2, quantize_output=False))
    x = torch.randn(16, 3, 6, 6)
    net.train()
    net(x)
    graph = _assert_exact(net.eval(), x)
    conv = graph.nodes[1]
    assert graph.edges[conv.output].type == conv.attrs["acc_type"]  # no cast
    with pytest.raises(ValueError, match="exact accumulator"):
        _ = net[1].output_type


def test_unsupported_module_error_lists_what_freeze_converts():
    """The list in the error is read from the rule tables: every registered layer is in it."""
    model = _Seq(QInput(8), nn.GELU())
    _calibrated(model, torch.randn(8, 4))
    with pytest.raises(ValueError, match="not a supported qfx layer") as err:
        freeze(model, torch.zeros(1, 4))
    msg = str(err.value)
    assert "GELU" in msg.split("Supported:")[0]  # names the offending module
    for name in ("QConv1d", "QSigmoid", "QGlobalMaxPool2d", "QBatchNorm2d", "torch.cat"):
        assert name in msg
    assert "_QBatchNorm" not in msg and "TableLayer" not in msg
