"""The HLS backend on learned widths: pruned channels lower the estimate; per-channel formats of
weights and BatchNorm scales are stored as narrow mantissas and per-channel shifts at every
folding (the multipliers see the mantissas' width, shared across output channels or not) and the
estimate counts the mantissa width and the per-output shifters."""

from __future__ import annotations

import copy
import re

import numpy as np
import torch
from builders import pruned_width_net
from torch import nn

import qfx
from qfx.backends.hls.estimate import estimate_resources
from qfx.backends.hls.rules import shifted_mantissas
from qfx.fixed.hwcost import DSP_LUT_EQUIV
from qfx.nn import QBatchNorm1d, QConfig, QInput, QLinear


def test_pruned_channels_lower_the_estimate():
    net, x = pruned_width_net()
    full, pruned = qfx.freeze(net, x[:1], prune=False), qfx.freeze(net, x[:1])
    for io in ("parallel", "stream"):
        before = estimate_resources(full, reuse=4, io=io).total
        after = estimate_resources(pruned, reuse=4, io=io).total
        assert after.lut + DSP_LUT_EQUIV * after.dsp < before.lut + DSP_LUT_EQUIV * before.dsp
        assert after.latency_cycles <= before.latency_cycles


def test_per_channel_formats_are_narrow_mantissas_and_shifts(tmp_path):
    net, x = pruned_width_net()
    graph = qfx.freeze(net, x[:1])
    assert graph.node("a").attrs["weight_shift"] == [0, 0, 2, 0]
    for name in ("a", "b", "fc"):
        node = graph.node(name)
        mant, shifts, m_t = shifted_mantissas(node)
        w = node.params["weight"]
        assert np.array_equal(mant << shifts.reshape(-1, *[1] * (w.ndim - 1)), w)
        assert m_t.width < node.attrs["weight_type"].width
    assert "weight_shift" not in graph.node("dw").attrs  # one format for every channel
    assert graph.node("bn").attrs["scale_shift"] == [2, 2, 0, 2]
    # shifted layers at every folding: dedicated multipliers (reuse 1, the shift is wiring) and
    # multipliers shared across output channels (reuse 4, one shift per output after the sum);
    # the multiply is on the narrow mantissa type (the config's weight_t)
    for io, reuse in (("parallel", 1), ("stream", 1), ("parallel", 4), ("stream", 4)):
        project = qfx.export_hls(graph, out_dir=tmp_path / f"{io}{reuse}", board="ultra96",
                                 io=io, reuse=reuse, on_budget="ignore")
        top = (project.root / "firmware" / "qfx_model.cpp").read_text()
        got = re.findall(r"qfx::(?:stream::)?(\w+)_shifted<", top)
        assert got == ["conv2d", "batchnorm", "conv2d", "dense"], (io, reuse, got)
        params = (project.root / "firmware" / "parameters.h").read_text()
        assert "typedef ap_fixed<5,-1> fc_wmant_t;" in params
        assert "typedef ap_ufixed<7,0> bn_smant_t;" in params  # scale_type ap_ufixed<8,1>
        for node, member, kind in (("fc", "weight_t", "wmant"), ("bn", "scale_t", "smant")):
            config = params[params.index(f"struct {node}_config"):]
            config = config[:config.index("};")]
            assert re.search(rf"typedef \S*{node}_{kind}_t {member};", config), config


def test_the_estimate_counts_the_mantissa_width():
    torch.manual_seed(0)
    cfg = QConfig(learn_widths=True, width_granularity="channel", act_width=4, weight_width=3)
    with qfx.config(cfg):
        net = nn.Sequential(QInput(8), QLinear(8, 4), QBatchNorm1d(4))
    with torch.no_grad():
        net[1].weight[1] *= 16
        net[1].weight[3] *= 4
        net[2].running_var.copy_(torch.tensor([1.0, 1 / 256, 1.0, 1 / 16]))  # scales x1..x16
    x = torch.randn(32, 8)
    with qfx.calibration(net):
        net(x)
    graph = qfx.freeze(net.eval(), x[:1])
    assert graph.node("n_1").attrs["weight_shift"] == [0, 4, 0, 2]
    assert graph.node("n_2").attrs["scale_shift"] == [4, 0, 4, 3]
    common = copy.deepcopy(graph)  # the same constants on one common type per tensor
    common.node("n_1").attrs.pop("weight_shift")
    common.node("n_2").attrs.pop("scale_shift")
    acc_w = {n: graph.node(n).attrs["acc_type"].width for n in ("n_1", "n_2")}
    for io, reuse in (("parallel", 1), ("stream", 1), ("parallel", 4), ("stream", 4)):
        narrow = estimate_resources(graph, reuse=reuse, io=io)
        wide = estimate_resources(common, reuse=reuse, io=io)
        fc, fc_wide = narrow.layer("n_1"), wide.layer("n_1")
        assert (fc.weight_type, fc_wide.weight_type) == ("ap_fixed<3,0>", "ap_fixed<7,4>")
        assert fc.dsp == 0 < fc_wide.dsp  # 8 x 3-bit products fit LUTs, 8 x 7-bit do not
        bn, bn_wide = narrow.layer("n_2"), wide.layer("n_2")
        assert (bn.weight_type, bn_wide.weight_type) == ("ap_ufixed<8,-1>", "ap_ufixed<10,1>")
        # multipliers shared across output channels (reuse 4; a parallel BatchNorm's channels
        # are sequential): one shifter per output lane, acc_w bits x clog2(max shift + 1)
        # levels; dedicated ones (reuse 1): wiring
        for layer, shared in ((fc, reuse > 1), (bn, reuse > 1 or io == "parallel")):
            shifter = f"1 shifter(s) of {acc_w[layer.node]} bits x 3 levels"
            assert any(shifter in n for n in layer.notes) == shared, layer.notes
            assert any("shifts wired" in n for n in layer.notes) == (not shared)
