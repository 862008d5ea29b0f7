"""The HLS backend on learned widths: pruned channels lower the estimate; per-channel formats are
stored as narrow mantissas and per-channel shifts (the multipliers see each channel's width) and
the estimate counts the mantissa width."""

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
from qfx.nn import QConfig, QInput, QLinear


def test_pruned_channels_lower_the_estimate():
    net, x = pruned_width_net()
    full, pruned = qfx.freeze(net, x[:1], prune=False), qfx.freeze(net, x[:1])
    for io in ("parallel", "stream"):
        before = estimate_resources(full, reuse=4, io=io).total
        after = estimate_resources(pruned, reuse=4, io=io).total
        assert after.dsp < before.dsp and after.latency_cycles <= before.latency_cycles


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
    # shifted layers at every folding: dedicated multipliers (reuse 1, the shift is wiring) and
    # multipliers shared across output channels (reuse 4, one shift per output after the sum);
    # the multiply is on the narrow mantissa type (the config's weight_t)
    for io, reuse in (("parallel", 1), ("stream", 1), ("parallel", 4), ("stream", 4)):
        project = qfx.export_hls(graph, out_dir=tmp_path / f"{io}{reuse}", board="ultra96",
                                 io=io, reuse=reuse, on_budget="ignore")
        top = (project.root / "firmware" / "qfx_model.cpp").read_text()
        got = re.findall(r"qfx::(?:stream::)?(\w+)_shifted<", top)
        assert got == ["conv2d", "conv2d", "dense"], (io, reuse, got)
        params = (project.root / "firmware" / "parameters.h").read_text()
        assert "typedef ap_fixed<5,-1> fc_wmant_t;" in params
        fc_config = params[params.index("struct fc_config"):]
        fc_config = fc_config[:fc_config.index("};")]
        assert re.search(r"typedef \S*fc_wmant_t weight_t;", fc_config), fc_config
        assert "fc_weight_t" not in fc_config


def test_the_estimate_counts_the_mantissa_width():
    torch.manual_seed(0)
    cfg = QConfig(learn_widths=True, width_granularity="channel", act_width=4, weight_width=3)
    with qfx.config(cfg):
        net = nn.Sequential(QInput(4), QLinear(8, 4))
    with torch.no_grad():
        net[1].weight[1] *= 16
        net[1].weight[3] *= 4
    x = torch.randn(32, 8)
    with qfx.calibration(net):
        net(x)
    graph = qfx.freeze(net.eval(), x[:1])
    assert graph.node("n_1").attrs["weight_shift"] == [0, 4, 0, 2]
    common = copy.deepcopy(graph)  # the same constants on one common type per tensor
    common.node("n_1").attrs.pop("weight_shift")
    acc_w = graph.node("n_1").attrs["acc_type"].width
    for io, reuse in (("parallel", 1), ("stream", 1), ("parallel", 4), ("stream", 4)):
        narrow = estimate_resources(graph, reuse=reuse, io=io).layer("n_1")
        wide = estimate_resources(common, reuse=reuse, io=io).layer("n_1")
        assert (narrow.weight_type, wide.weight_type) == ("ap_fixed<3,0>", "ap_fixed<7,4>")
        assert narrow.dsp == 0 < wide.dsp  # 4 x 3-bit products fit LUTs, 4 x 7-bit do not
        # multipliers shared across output channels (reuse 4): one shifter per output lane,
        # acc_w bits x clog2(max shift 4 + 1) = 3 levels; dedicated ones (reuse 1): wiring
        shifter = f"1 shifter(s) of {acc_w} bits x 3 levels"
        assert any(shifter in n for n in narrow.notes) == (reuse > 1), narrow.notes
