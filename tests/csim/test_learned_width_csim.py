"""A learned-width model (per-weight formats, per-channel BatchNorm formats): eval output ==
frozen executor == C-simulation on both arithmetic paths in both architectures, saturating
inputs included."""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

import qfx
from qfx.nn import QBatchNorm2d, QConfig, QConv2d, QFlatten, QInput, QLinear, QReLU


def _learned_width_cnn() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(3)
    cfg = QConfig(learn_widths=True, width_granularity="element", act_width=6, weight_width=5)
    with qfx.config(cfg):
        net = nn.Sequential(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                            QFlatten(), QLinear(4 * 5 * 5, 3))
    x = torch.randn(32, 2, 5, 5)
    opt = torch.optim.Adam(net.parameters(), 0.05)
    net.train()
    for _ in range(5):  # move the formats: widths now differ per weight
        loss = net(x).square().mean() + 1e-3 * net[1].weight_quantizer.bit_widths(
            net[1].weight).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), x


def test_learned_width_model_eval_equals_executor_and_csim(tmp_path):
    net, x = _learned_width_cnn()
    graph = qfx.freeze(net, x[:1])
    xs = torch.cat([x[:4], x[4:8] * 16])  # saturating inputs included
    out_t = graph.edges[graph.outputs[0]].type
    with torch.no_grad():
        expected = out_t.to_int(net(xs)).numpy()
    assert np.array_equal(qfx.run_graph(graph, xs).raw[0], expected)
    for io in ("parallel", "stream"):
        project = qfx.export_hls(net, x[:1], tmp_path / io, board="ultra96", io=io, reuse=4,
                                 on_budget="ignore", test_vectors=x[:2].numpy())
        # per-channel formats at reuse 4 (multipliers shared across output channels): narrow
        # weight mantissas in the multiply, one shift per output after the sum; narrow
        # BatchNorm scale mantissas, the product shifted by the channel's shift
        firmware = project.root / "firmware"
        assert re.findall(r"qfx::(?:stream::)?(\w+)_shifted<", (
            firmware / "qfx_model.cpp").read_text()) == ["conv2d", "batchnorm", "dense"]
        params = (firmware / "parameters.h").read_text()
        assert "typedef ::qfx_model_fw::n_5_wmant_t weight_t;" in params
        assert "typedef ::qfx_model_fw::n_2_smant_t scale_t;" in params
        report = qfx.csim(project, xs, arith="both")
        assert report.bit_exact and report.mismatches == 0, str(report)
