"""multithreshold in hardware: a CNN whose BatchNorm + QReLU / QHardTanh pairs are folded
(``fold_thresholds=True``, one BatchNorm with negative scales) C-simulates bit-exactly on both
arithmetic paths, on random and saturating inputs, and the folded graph equals the qfx.nn eval
output. This is the ``io="parallel"`` proof; the ``io="stream"`` one (same C++ layer inside the
pixel-wise stream wrapper, both paths) is the imported Brevitas CNN of
``tests/frontends/test_onnx_thresholds.py`` (one compile per architecture and path in all)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builders import folded_threshold_cnn

import qfx
from qfx.backends.hls.estimate import estimate_resources
from qfx.backends.hls.export import export_hls


def test_folded_cnn_equals_eval():
    net, graph, x = folded_threshold_cnn()
    assert [n.op for n in graph.nodes].count("multithreshold") == 2
    assert -1 in graph.nodes[4].params["direction"]
    xs = torch.cat([x, x * 16])
    with torch.no_grad():
        want = graph.edges[graph.outputs[0]].type.to_int(net(xs)).numpy()
    np.testing.assert_array_equal(qfx.run_graph(graph, xs).raw[0], want)


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_multithreshold_estimate_is_comparators_only(io):
    _, graph, _ = folded_threshold_cnn()
    rows = [r for r in estimate_resources(graph, reuse=1, io=io).layers
            if r.op == "multithreshold"]
    assert len(rows) == 2 and all(r.dsp == 0 and r.lut > 0 for r in rows)


def test_folded_cnn_csim_is_bit_exact_on_both_paths(tmp_path):
    _, graph, x = folded_threshold_cnn()
    project = export_hls(graph, tmp_path / "prj", board="ultra96", io="parallel", reuse=4,
                         on_budget="ignore", test_vectors=x[:2].numpy())
    xs = torch.cat([torch.randn(3, 2, 6, 6), torch.randn(3, 2, 6, 6) * 16])  # saturating
    report = qfx.csim(project, xs, arith="both")
    assert report.bit_exact and report.mismatches == 0, str(report)
