"""The HLS backend on learned widths: pruned channels lower the estimate; per-channel formats are
stored as narrow mantissas and per-channel shifts (the multipliers see each channel's width) and
the estimate counts the mantissa width."""

from __future__ import annotations

import copy

import numpy as np
from builders import pruned_width_net

import qfx
from qfx.backends.hls.estimate import estimate_resources
from qfx.backends.hls.rules import shifted_mantissas


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
    assert shifted_mantissas(graph.node("dw")) is None and "weight_shift" not in \
        graph.node("dw").attrs  # one format for every channel: the plain layer
    common = copy.deepcopy(graph)  # the same constants on one common type per tensor
    for node in common.nodes:
        node.attrs.pop("weight_shift", None)
    for io in ("parallel", "stream"):
        narrow = estimate_resources(graph, reuse=4, io=io)
        wide = estimate_resources(common, reuse=4, io=io)
        assert narrow.layer("fc").weight_type == "ap_fixed<5,-1>"
        assert wide.layer("fc").weight_type == "ap_fixed<9,3>"
        assert narrow.total.lut < wide.total.lut and narrow.total.dsp <= wide.total.dsp
    project = qfx.export_hls(graph, out_dir=tmp_path, board="ultra96", reuse=4,
                             on_budget="ignore")
    top = (project.root / "firmware" / "qfx_model.cpp").read_text()
    assert "qfx::conv2d_shifted<" in top and "qfx::dense_shifted<" in top
    assert "qfx::conv2d<" in top  # dw
    params = (project.root / "firmware" / "parameters.h").read_text()
    assert "typedef ap_fixed<5,-1> fc_wmant_t;" in params
