"""The channel-pruning pass (qfx/ir/prune.py): zero-width channels leave the frozen graph, their
constants fold exactly into the consumers, the outputs stay the same bits, the estimate drops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builders import pruned_width_net
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import qfx
from qfx.ir.prune import channel_constants, prune_channels
from qfx.nn import QBatchNorm2d, QConfig, QConv2d, QFlatten, QInput, QLinear, QReLU


def test_zero_width_channels_leave_the_graph_and_the_outputs_stay_exact():
    net, x = pruned_width_net()
    full = qfx.freeze(net, x[:1], prune=False)
    graph = qfx.freeze(net, x[:1])
    consts = channel_constants(full)
    assert consts["relu"] == {1: 16, 4: 12} and consts["flat"][8] != 0  # nonzero constants
    assert {k: graph.edges[k].shape[0] for k in ("a", "b", "dw", "add", "side", "cat", "flat")} \
        == {"a": 4, "b": 4, "dw": 4, "add": 4, "side": 2, "cat": 6, "flat": 24}
    assert graph.meta["pruned_channels"]["flat"] == 8
    assert graph.node("dw").attrs["groups"] == 4
    xs = torch.cat([x, x[:8] * 16])
    with torch.no_grad():
        expected = graph.edges[graph.outputs[0]].type.to_int(net(xs)).numpy()
    assert np.array_equal(qfx.run_graph(graph, xs).raw[0], expected)
    assert np.array_equal(qfx.run_graph(full, xs).raw[0], expected)
    before, after = qfx.cost_report(full).total, qfx.cost_report(graph).total
    assert after.macs < before.macs and after.multipliers < before.multipliers


@pytest.mark.parametrize("padding", [0, 1])
def test_a_padded_convolution_folds_only_a_constant_zero(padding):
    torch.manual_seed(2)
    with qfx.config(QConfig(act_width=6, weight_width=5)):
        net = nn.Sequential(QInput(8), QConv2d(2, 3, 1), QReLU(),
                            QConv2d(3, 2, 3, padding=padding), QFlatten(),
                            QLinear(2 * (4 + 2 * padding - 2) ** 2, 2))
    with torch.no_grad():
        net[1].weight[1] = 0.0
        net[1].bias[1] = 0.5  # channel 1 of the ReLU: the constant 0.5
    x = torch.randn(16, 2, 4, 4)
    with qfx.calibration(net):
        net(x)
    full = qfx.freeze(net, x[:1], prune=False)
    (c, raw), = channel_constants(full)["n_2"].items()
    assert c == 1 and raw * 2.0 ** -full.edges["n_2"].type.frac_bits == 0.5
    graph = prune_channels(full)
    assert graph.edges["n_2"].shape[0] == (3 if padding else 2)
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], qfx.run_graph(full, x).raw[0])


def test_graph_outputs_and_the_last_channel_stay():
    with qfx.config(QConfig(act_width=6, weight_width=5)):
        net = nn.Sequential(QInput(8), QLinear(4, 1), QReLU(), QLinear(1, 3))
    with torch.no_grad():
        net[1].weight.zero_()
        net[3].weight[1] = 0.0
    x = torch.randn(8, 4)
    with qfx.calibration(net):
        net(x)
    graph = qfx.freeze(net, x[:1])
    assert graph.edges["n_1"].shape == (1,) and graph.edges[graph.outputs[0]].shape == (3,)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_pruning_keeps_every_output_bit(data):
    """Random MLPs with random zero rows and columns: the pruned graph computes the same bits."""
    seed = data.draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    widths = data.draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    with qfx.config(QConfig(act_width=5, weight_width=4)):
        layers = [QInput(6)]
        for n_in, n_out in zip(widths, widths[1:], strict=False):
            layers += [QLinear(n_in, n_out), QReLU()]
        net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net:
            if isinstance(m, QLinear):
                m.weight.mul_((torch.rand(m.weight.shape[0], 1) > 0.4).float())
                m.weight.mul_((torch.rand(1, m.weight.shape[1]) > 0.3).float())
    x = torch.randn(16, widths[0])
    with qfx.calibration(net):
        net(x)
    full = qfx.freeze(net, x[:1], prune=False)
    graph = prune_channels(full)
    xs = torch.cat([x, 8 * x])
    assert np.array_equal(qfx.run_graph(graph, xs).raw[0], qfx.run_graph(full, xs).raw[0])


def test_weight_and_scale_shifts_are_checked_and_follow_the_pruned_rows():
    net, x = pruned_width_net()
    graph = qfx.freeze(net, x[:1])
    assert graph.node("b").attrs["weight_shift"] == [3, 0, 0, 0]  # channel 2 of 5 pruned
    # BatchNorm scale with per-channel formats: channels 1 and 4 of 6 pruned
    assert qfx.freeze(net, x[:1], prune=False).node("bn").attrs["scale_shift"] == \
        [2, 1, 2, 0, 2, 2]
    assert graph.node("bn").attrs["scale_shift"] == [2, 2, 0, 2]
    for name, key, bad in (("b", "weight", [4, 0, 0, 0]), ("bn", "scale", [3, 2, 0, 2])):
        node = graph.node(name)
        good = node.attrs[f"{key}_shift"]
        node.attrs[f"{key}_shift"] = bad
        with pytest.raises(ValueError, match=f"not a multiple of 2\\*\\*{key}_shift"):
            node.validate()
        node.attrs[f"{key}_shift"] = good[:-1]
        with pytest.raises(ValueError, match=f"{name}.*{key}_shift must be one integer 0..62 "
                                             "per output channel"):
            node.validate()
        node.attrs[f"{key}_shift"] = good
    with qfx.config(QConfig(act_width=6, weight_width=5, per_channel_weights=True)):
        plain = nn.Sequential(QInput(8), QLinear(4, 2))
    with qfx.calibration(plain):
        plain(torch.randn(8, 4))
    assert "weight_shift" not in qfx.freeze(plain, torch.randn(1, 4)).node("n_1").attrs


@pytest.mark.parametrize("shift, kept", [(-0.5, 3), (0.75, 4)])
def test_a_batchnorm_channel_whose_scale_is_pruned_is_its_shift(shift, kept):
    """A BatchNorm channel whose learned scale reached width 0 is its shift whatever its input
    channel holds: after a ReLU a non-positive shift is a constant 0, which the padded
    convolution reading it absorbs, so the BatchNorm channel and the convolution row feeding it
    (whose weights are not zero) leave the graph; a positive one is a nonzero constant, which a
    padded convolution cannot absorb, so the channel stays. Either way the same bits."""
    torch.manual_seed(3)
    cfg = QConfig(learn_widths=True, width_granularity="channel", act_width=6, weight_width=5)
    with qfx.config(cfg):
        net = nn.Sequential(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                            QConv2d(4, 3, 3, padding=1), QFlatten(), QLinear(3 * 16, 2))
    x = torch.randn(32, 2, 4, 4)
    with qfx.calibration(net):
        net(x)
    net.eval()
    with torch.no_grad():
        net[2].scale_quantizer.log2_lsb[1] = 30.0  # every scale value of channel 1 rounds to 0
        net[2].bias[1] = shift
    full = qfx.freeze(net, x[:1], prune=False)
    assert full.node("n_2").params["scale"][1] == 0 and full.node("n_1").params["weight"][1].any()
    graph = prune_channels(full)
    assert graph.edges["n_2"].shape[0] == kept and graph.edges["n_1"].shape[0] == kept
    xs = torch.cat([x, 8 * x])
    with torch.no_grad():
        expected = graph.edges[graph.outputs[0]].type.to_int(net(xs)).numpy()
    assert np.array_equal(qfx.run_graph(graph, xs).raw[0], expected)
    assert np.array_equal(qfx.run_graph(full, xs).raw[0], expected)
