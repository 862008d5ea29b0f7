"""Binarized networks: sign STE, XNOR-popcount ops equal the reference dot products, BatchNorm +
sign folds into exact integer thresholds (ties, negative and zero scales included), and the
frozen executor equals eval `==` for whole BNNs (zoo models included)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import qfx
from qfx import ROUNDING_MODES
from qfx.frontends.pytorch import freeze
from qfx.ir import cost_report, load_graph, run_graph, save_graph
from qfx.nn import (
    QBatchNorm1d,
    QBatchNorm2d,
    QBinaryConv2d,
    QBinaryLinear,
    QConfig,
    QConv2d,
    QFlatten,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
    QSign,
    QThermometer,
    quantize_model,
)
from qfx.nn.binary import BINARY_TYPE, binarize
from qfx.zoo import cnv_w1a1, digits_bnn, get_model, model_spec


def _assert_exact(model: nn.Module, x: torch.Tensor, scales=(1.0,)):
    model.eval()
    graph = freeze(model, x[:1])
    out_t = graph.edges[graph.outputs[0]].type
    for s in scales:
        with torch.no_grad():
            expected = model(x * s)
        res = run_graph(graph, x * s)
        assert np.array_equal(out_t.to_int(expected).numpy(), res.raw[0]), f"scale {s}"
        assert np.array_equal(expected.numpy(), res.outputs[0])
    return graph


def _warm(model: nn.Module, x: torch.Tensor, steps: int = 3) -> nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()


def _set_format(q, frac_bits: int) -> None:
    with torch.no_grad():
        q.log2_lsb.fill_(-float(frac_bits))
        q.initialized.fill_(True)


def test_sign_ste_is_clipped_and_zero_maps_to_plus_one():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = binarize(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]
    assert QSign().eval()(torch.tensor([0.0, -0.0])).tolist() == [1.0, 1.0]


def test_binary_layers_reject_non_binary_inputs():
    with pytest.raises(ValueError, match=r"\{-1, \+1\} inputs"):
        QBinaryLinear(3, 2).eval()(torch.tensor([[1.0, 0.0, -1.0]]))
    net = nn.Sequential(QInput(8), QBinaryLinear(4, 2))
    with qfx.calibration(net):
        net[0](torch.randn(8, 4))
    with pytest.raises(ValueError, match="needs \\{-1, \\+1\\} inputs.*QSign"):
        freeze(net.eval(), torch.ones(1, 4))


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (1, 0, 1, 4)])
def test_binary_conv_popcount_equals_the_reference_dot_product(stride, padding, dilation,
                                                               groups):
    torch.manual_seed(0)
    conv = QBinaryConv2d(8, 8, 3, stride, padding, dilation, groups).eval()
    net = nn.Sequential(QInput(4), QSign(), conv)
    _set_format(net[0].output_quantizer, 2)
    x = torch.randn(6, 8, 7, 7)
    graph = _assert_exact(net, x, scales=(1.0, -3.0))
    node = graph.nodes[-1]
    assert node.op == "binary_conv2d" and node.attrs["pad_value"] == -1
    assert node.attrs["fan_in"] == 8 // groups * 9
    # the reference: plain +-1 convolution with -1 padding, computed here independently
    with torch.no_grad():
        xb = net[1](net[0](x))  # the +-1 input the layer sees
    assert set(xb.unique().tolist()) == {-1.0, 1.0}
    xp = nn.functional.pad(xb, (padding,) * 4, value=-1.0)
    w = torch.from_numpy(node.params["weight"]).double()
    ref = nn.functional.conv2d(xp, w, None, stride, 0, dilation, groups)
    assert np.array_equal(run_graph(graph, x).raw[0], ref.numpy().astype(np.int64))
    assert graph.edges[node.output].type == qfx.FixedType.for_raw_range(
        -node.attrs["fan_in"], node.attrs["fan_in"], 0)


def test_binary_layer_with_negative_scales_is_exact():
    net = nn.Sequential(QInput(4), QSign(), QBinaryLinear(6, 3, scale=True, act_width=6))
    _set_format(net[0].output_quantizer, 2)
    with torch.no_grad():
        net[2].scale.copy_(torch.tensor([-0.5, -0.25, -1.0]))
    _set_format(net[2].scale_quantizer, 4)
    _set_format(net[2].output_quantizer, 2)
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=6)))
    graph = _assert_exact(net, x)
    node = graph.nodes[-1]
    assert node.params["scale"].tolist() == [-8, -4, -16]
    assert node.attrs["acc_type"] == qfx.FixedType.for_raw_range(-96, 96, 4)


def test_run_graph_refuses_non_binary_values_into_binary_ops():
    net = nn.Sequential(QInput(4), QSign(), QBinaryLinear(3, 2))
    _set_format(net[0].output_quantizer, 1)
    graph = freeze(net.eval(), torch.ones(1, 3))
    graph.nodes[-1].inputs = [graph.nodes[0].output]  # bypass the sign
    with pytest.raises(ValueError, match="other than -1/\\+1"):
        run_graph(graph, torch.tensor([[0.5, 1.0, -1.0]]))


# ---------------------------------------------------------------------- threshold folding
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_batchnorm_sign_folds_into_exact_thresholds(data):
    """Random BN scales (negative and zero included) and shifts (exact ties included), output
    formats, rounding and overflow modes; every possible input value of every channel is run
    through eval and the frozen graph."""
    channels = 6
    source = data.draw(st.sampled_from(["binary", "fixed"]), label="source")
    rounding = data.draw(st.sampled_from(ROUNDING_MODES), label="rounding")
    overflow = data.draw(st.sampled_from(["SAT", "SAT_SYM", "WRAP", "SAT_ZERO"]),
                         label="overflow")
    out_width = data.draw(st.integers(1, 6), label="out_width")
    out_int = data.draw(st.integers(-2, 4), label="out_int_bits")
    fs = data.draw(st.integers(0, 4), label="scale_frac")
    scale_raw = data.draw(st.lists(st.integers(-8, 8), min_size=channels, max_size=channels),
                          label="scale_raw")
    cfg = QConfig(act_rounding=rounding, act_overflow=overflow)
    if source == "binary":
        n_in = data.draw(st.integers(1, 7), label="n_in")
        net = nn.Sequential(QInput(4), QSign(), QBinaryLinear(n_in, channels),
                            QBatchNorm1d(channels, eps=0.0, config=cfg), QSign())
        _set_format(net[0].output_quantizer, 2)
        x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n_in)))
        values, fx_bits = list(range(-n_in, n_in + 1, 2)), 0  # every attainable dot product
        bn = net[3]
    else:
        fx_bits = data.draw(st.integers(0, 3), label="input_frac")
        net = nn.Sequential(QInput(5), QBatchNorm1d(channels, eps=0.0, config=cfg), QSign())
        _set_format(net[0].output_quantizer, fx_bits)
        raw_in = torch.arange(-16, 16, dtype=torch.float64)
        x = (raw_in / 2**fx_bits).view(-1, 1).expand(-1, channels).contiguous()
        values = [v / 2**fx_bits for v in range(-16, 16)]
        bn = net[1]
    scale = [r / 2**fs for r in scale_raw]
    shift = []
    for c in range(channels):
        if data.draw(st.booleans(), label=f"tie{c}"):  # BN(x) == 0 exactly for some input
            shift.append(-data.draw(st.sampled_from(values), label=f"x{c}") * scale[c])
        else:
            shift.append(data.draw(st.integers(-64, 64), label=f"h{c}") / 2 ** (fs + fx_bits))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(scale))
        bn.bias.copy_(torch.tensor(shift))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
    _set_format(bn.scale_quantizer, fs)
    bn.shift_quantizer.width = 20  # holds every tie exactly
    _set_format(bn.shift_quantizer, fs + fx_bits + 1)
    _set_format(bn.output_quantizer, out_width - out_int)
    bn.output_quantizer.width = out_width
    net.eval()
    graph = freeze(net, x[:1])
    with torch.no_grad():
        expected = net(x)
    res = run_graph(graph, x)
    assert np.array_equal(expected.numpy(), res.outputs[0])
    ops = [n.op for n in graph.nodes]
    assert ops[-1] == "threshold"
    if overflow in ("SAT", "SAT_SYM"):
        assert "batchnorm" not in ops  # folded: one threshold per channel
        node = graph.nodes[-1]
        assert node.inputs[0] == graph.nodes[-2].output
        assert node.params["threshold"].shape == node.params["direction"].shape == (channels,)
        quantized_scale = bn.quantized_scale_shift()[0]
        falling = node.params["direction"] < 0
        assert bool((quantized_scale[torch.from_numpy(falling)] < 0).all())


def test_threshold_values_for_hand_computed_batchnorms():
    # dot in {-4, -2, 0, 2, 4}; BN(d) = s * d + h with exact ties at d = 2 and d = -2
    net = nn.Sequential(QInput(4), QSign(), QBinaryLinear(4, 4), QBatchNorm1d(4, eps=0.0),
                        QSign())
    _set_format(net[0].output_quantizer, 2)
    bn = net[3]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -0.5, 0.0, 0.25]))
        bn.bias.copy_(torch.tensor([-1.0, -1.0, 0.0, -0.375]))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
    _set_format(bn.scale_quantizer, 4)
    _set_format(bn.shift_quantizer, 4)
    _set_format(bn.output_quantizer, 4)
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)))
    graph = _assert_exact(net, x)
    node = graph.nodes[-1]
    # +1 iff d >= 2 | d <= -2 (negative scale) | always (zero scale, zero shift) | d >= 1.5
    assert node.params["threshold"].tolist() == [2, -2, -8, 2]
    assert node.params["direction"].tolist() == [1, -1, 1, 1]
    assert node.attrs["threshold_type"] == qfx.FixedType(4, 4)


def test_sign_without_batchnorm_is_a_zero_threshold():
    net = nn.Sequential(QInput(6), QSign())
    _set_format(net[0].output_quantizer, 3)
    x = torch.arange(-32, 32).view(-1, 1).double() / 8
    graph = _assert_exact(net, x)
    node = graph.nodes[-1]
    assert node.op == "threshold" and node.params["threshold"].tolist() == [0]
    assert node.params["direction"].tolist() == [1]
    assert graph.edges[node.output].type == BINARY_TYPE


# ---------------------------------------------------------------------- whole networks
def _bnn(first: str, cfg: QConfig) -> nn.Sequential:
    with qfx.config(cfg):
        layers: list[nn.Module] = [QInput(8, signed=False)]
        if first == "thermometer":
            layers += [QThermometer(3), QBinaryConv2d(6, 16, 3, padding=1, stride=2)]
        else:
            layers += [QConv2d(2, 16, 3, padding=1, stride=2)]
        layers += [QBatchNorm2d(16), QSign(), QMaxPool2d(2),
                   QBinaryConv2d(16, 16, 3, padding=1, scale=True), QBatchNorm2d(16), QSign(),
                   QFlatten(), QBinaryLinear(16 * 16, 24), QBatchNorm1d(24), QSign(),
                   QLinear(24, 5)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("first, cfg", [
    ("thermometer", QConfig()),
    ("fixed", QConfig(act_overflow="WRAP", per_channel_weights=True)),
    ("thermometer", QConfig(bn_scale_khot=1, act_rounding="TRN")),
])
def test_binarized_networks_freeze_exactly_including_saturation(first, cfg):
    torch.manual_seed(1)
    net = _bnn(first, cfg)
    x = torch.rand(48, 2, 16, 16)
    _warm(net, x)
    graph = _assert_exact(net, x, scales=(1.0, 1.5, 8.0, -1.0))
    ops = [n.op for n in graph.nodes]
    assert ops.count("threshold") == 3
    assert ops.count("binary_conv2d") == (2 if first == "thermometer" else 1)
    assert ops.count("binary_dense") == 1
    if cfg.act_overflow == "SAT":
        assert "batchnorm" not in ops
    binary = [n for n in graph.nodes if n.op in ("binary_conv2d", "binary_dense")]
    for n in binary:
        assert set(np.unique(n.params["weight"]).tolist()) <= {-1, 1}
    scaled = next(n for n in binary if "scale" in n.params)
    if cfg.bn_scale_khot:
        assert scaled.attrs["scale_khot"] == 1 and "scale_digits" in scaled.params
    report = cost_report(graph)
    # the only possible multipliers: a fixed-point first layer and the binary layer's scale
    assert report.node(graph.nodes[-1].name).multipliers == 0  # last layer on +-1 inputs
    assert report.total.xnor_bits > 0


def test_thermometer_thresholds_are_exact_on_the_input_grid():
    net = nn.Sequential(QInput(6, signed=False), QThermometer(5, 0.0, 0.8))
    _set_format(net[0].output_quantizer, 6)
    x = (torch.arange(0, 64).double() / 64).view(-1, 1)
    graph = _assert_exact(net, x, scales=(1.0, 2.0))
    node = graph.nodes[-1]
    thresholds = [0.08, 0.24, 0.4, 0.56, 0.72]
    assert node.params["thresholds"].tolist() == [int(np.ceil(t * 64)) for t in thresholds]
    out = run_graph(graph, x).outputs[0]
    assert np.array_equal((out > 0).sum(1), np.searchsorted(np.array(thresholds) * 64,
                                                            np.arange(64), side="right"))


def test_save_load_round_trip_of_a_bnn(tmp_path):
    torch.manual_seed(2)
    net = _warm(_bnn("thermometer", QConfig()), torch.rand(16, 2, 16, 16))
    x = torch.rand(8, 2, 16, 16)
    graph = freeze(net, x[:1])
    loaded = load_graph(save_graph(graph, tmp_path / "bnn.qfx.npz"))
    assert np.array_equal(run_graph(loaded, x).raw[0], run_graph(graph, x).raw[0])
    assert [n.attrs for n in loaded.nodes] == [n.attrs for n in graph.nodes]


def test_zoo_bnns_build_freeze_exactly_and_need_no_dsp_with_thermometer_input():
    assert model_spec("digits_bnn").kind == "qfx" and model_spec("cnv_w1a1").kind == "qfx"
    torch.manual_seed(3)
    x = torch.rand(64, 1, 8, 8) / 2
    for first in ("thermometer", "fixed"):
        net = _warm(get_model("digits_bnn", first_layer=first), x)
        graph = _assert_exact(net, x, scales=(1.0, 4.0))
        report = cost_report(graph)
        assert report.dsp_free == (first == "thermometer")
    cnv = cnv_w1a1(first_layer="thermometer", thermometer_levels=2)
    xc = torch.rand(8, 3, 32, 32)
    _warm(cnv, xc, steps=2)
    graph = _assert_exact(cnv, xc[:3])
    assert sum(p.numel() for p in cnv.parameters()) > 1_500_000
    assert [n.op for n in graph.nodes].count("threshold") == 8
    assert cost_report(graph).dsp_free
    with pytest.raises(ValueError, match="first_layer must be one of"):
        digits_bnn(first_layer="float")


def test_quantize_model_refuses_models_made_of_qfx_layers():
    with pytest.raises(ValueError, match="already contains qfx layers"):
        quantize_model(digits_bnn(), {"bits": 8})


def test_binary_training_learns_a_separable_task():
    torch.manual_seed(4)
    net = nn.Sequential(QInput(8), QSign(), QBinaryLinear(16, 32), QBatchNorm1d(32), QSign(),
                        QLinear(32, 2), QReLU())
    x = torch.randn(512, 16)
    y = (x[:, :3].sum(1) > 0).long()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net.train()
    for _ in range(80):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).double().mean().item()
    assert acc > 0.8
