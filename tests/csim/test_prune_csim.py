"""A learned-width model with zero-width channels, pruned at freeze (fewer channels in the graph
and in the C++), and per-channel formats stored as narrow mantissas and shifts (conv2d_shifted,
batchnorm_shifted, dense_shifted): eval output of the
unpruned model == the pruned graph's executor == C-simulation on both arithmetic paths in both
architectures, saturating inputs included."""

from __future__ import annotations

import numpy as np
import torch
from builders import pruned_width_net

import qfx


def test_pruned_model_csim_bit_exact(tmp_path):
    net, x = pruned_width_net()
    graph = qfx.freeze(net, x[:1])
    assert graph.edges["a"].shape[0] == 4 and graph.node("fc").params["weight"].shape == (3, 24)
    xs = torch.cat([x[:4], x[4:8] * 16])
    with torch.no_grad():
        expected = graph.edges[graph.outputs[0]].type.to_int(net(xs)).numpy()
    assert np.array_equal(qfx.run_graph(graph, xs).raw[0], expected)
    for io in ("parallel", "stream"):
        project = qfx.export_hls(graph, out_dir=tmp_path / io, board="ultra96", io=io, reuse=1,
                                 on_budget="ignore", test_vectors=x[:2].numpy())
        weights = project.root / "firmware" / "weights"  # 4 of 6 channels, 24 of 32 inputs
        assert "a_w[72]" in (weights / "a_w.h").read_text()
        assert "fc_w[72]" in (weights / "fc_w.h").read_text()
        assert "dense_shifted<" in (project.root / "firmware" / "qfx_model.cpp").read_text()
        report = qfx.csim(project, xs, arith="both", opt="-O0")  # compile time
        assert report.bit_exact and report.mismatches == 0, str(report)
