"""multithreshold in hardware: a CNN whose BatchNorm + QReLU / QHardTanh pairs are folded
(``fold_thresholds=True``, one BatchNorm with negative scales) C-simulates bit-exactly on both
arithmetic paths in both architectures, on random and saturating inputs, and the folded graph
equals the qfx.nn eval output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.backends.hls.export import export_hls
from qfx.nn import QBatchNorm2d, QConfig, QConv2d, QFlatten, QHardTanh, QInput, QLinear, QReLU


def _folded_cnn() -> tuple[nn.Module, qfx.Graph, torch.Tensor]:
    torch.manual_seed(3)
    with qfx.config(QConfig(act_width=6, per_channel_weights=True)):
        net = nn.Sequential(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4),
                            QReLU(act_width=3), QConv2d(4, 3, 3), QBatchNorm2d(3),
                            QHardTanh(-1.0, 1.0, act_width=4), QFlatten(), QLinear(48, 3))
    x = torch.randn(32, 2, 6, 6)
    net.train()
    for _ in range(2):
        net(x)
    with torch.no_grad():
        net[5].weight.mul_(torch.tensor([-1.0, 1.0, -2.0]))  # falling channels
    net.eval()
    graph = qfx.freeze(net, x[:1], fold_thresholds=True)
    return net, graph, x


def test_folded_cnn_equals_eval():
    net, graph, x = _folded_cnn()
    assert [n.op for n in graph.nodes].count("multithreshold") == 2
    assert -1 in graph.nodes[4].params["direction"]
    xs = torch.cat([x, x * 16])
    with torch.no_grad():
        want = graph.edges[graph.outputs[0]].type.to_int(net(xs)).numpy()
    np.testing.assert_array_equal(qfx.run_graph(graph, xs).raw[0], want)


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_folded_cnn_csim_is_bit_exact_on_both_paths(io, tmp_path):
    _, graph, x = _folded_cnn()
    project = export_hls(graph, tmp_path / io, board="ultra96", io=io, reuse=4,
                         on_budget="ignore", test_vectors=x[:2].numpy())
    xs = torch.cat([torch.randn(3, 2, 6, 6), torch.randn(3, 2, 6, 6) * 16])  # saturating
    report = qfx.csim(project, xs, arith="both")
    assert report.bit_exact and report.mismatches == 0, str(report)
