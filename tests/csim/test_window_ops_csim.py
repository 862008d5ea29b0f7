"""ops-window: one small model with every op ops-window adds (LeakyReLU 2**-k, Hardswish,
Hardsigmoid, ReLU6/clamp, average pooling with padding / ceil_mode / count_include_pad and a
divisor per position, AdaptiveAvgPool2d(k)) C-simulates bit-exactly on both arithmetic paths in
both architectures, on random and saturating inputs, and equals the qfx.nn model in eval mode and
the executor (one compile per architecture and path); a 1-D CNN (conv1d, depthwise and dilated)
does too, on the synthesis arithmetic in one architecture and the native one in the other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builders import conv1d_ops, window_ops

import qfx


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_window_ops_model_is_bit_exact_in_both_architectures(io, tmp_path):
    model, calib = window_ops()
    x = torch.cat([calib[:3], calib[3:6] * 8])  # random, then saturating
    graph = qfx.freeze(model, calib[:1])
    out_t = graph.edges[graph.outputs[0]].type
    with torch.no_grad():
        expected = out_t.to_int(model(x)).numpy()
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], expected)
    assert {"leaky_relu", "hardswish", "hardsigmoid", "hardtanh"} <= {n.op for n in graph.nodes}
    assert any(n.op == "avgpool2d" and n.params.get("recip", np.zeros(1)).size > 1
               for n in graph.nodes)
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96", io=io,
                             reuse=8, on_budget="ignore", test_vectors=calib[:2].numpy())
    report = qfx.csim(project, x, arith="both")
    assert report.bit_exact and report.mismatches == 0 and report.samples == 6, str(report)


@pytest.mark.parametrize("io,arith", [("parallel", "synth"), ("stream", "native")])
def test_conv1d_model_is_bit_exact(io, arith, tmp_path):
    model, calib = conv1d_ops()
    x = torch.cat([calib[:3], calib[3:6] * 8])
    graph = qfx.freeze(model, calib[:1])
    assert [n.op for n in graph.nodes].count("conv1d") == 2
    out_t = graph.edges[graph.outputs[0]].type
    with torch.no_grad():
        expected = out_t.to_int(model(x)).numpy()
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], expected)
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96", io=io,
                             reuse=4, on_budget="ignore", test_vectors=calib[:2].numpy())
    report = qfx.csim(project, x, arith=arith)
    assert report.bit_exact and report.mismatches == 0 and report.samples == 6, str(report)
