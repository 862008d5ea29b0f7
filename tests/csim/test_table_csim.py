"""Table activations in C++: one model with tanh (on the input: every table code), sigmoid and
softmax (over the channels of every pixel of a feature map) C-simulates bit-exactly on both
arithmetic paths (native and -DQFX_AP_ARITH) in both architectures, on every input code, random
and saturating inputs; and qfx.nn eval == executor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.fixed import FixedQuantizer
from qfx.fixed.tables import table_codes
from qfx.nn import QConfig, QConv2d, QInput, QSigmoid, QSoftmax, QTanh


def _model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(3)
    sat = QConfig(act_width=6, weight_width=6)
    wrap = QConfig(act_width=5, weight_width=6, act_overflow="WRAP", act_rounding="TRN")
    net = nn.Sequential(QInput(6, config=sat), QTanh(config=wrap), QConv2d(4, 6, 1, config=sat),
                        QSigmoid(config=sat), QConv2d(6, 5, 1, config=sat),
                        QSoftmax(config=sat))
    net[0].output_quantizer = FixedQuantizer(6, True, "RND", "SAT", int_bits=2)
    with qfx.calibration(net):
        net(torch.randn(64, 4, 2, 2))
    in_t = net[0].output_quantizer.fixed_type
    codes = in_t.from_int(table_codes(in_t))  # 64 codes: every one in every channel
    every = codes[(np.arange(16)[:, None, None] * 4 + np.arange(4)[None, :, None] * 16
                   + np.arange(4)[None, None, :]) % 64].reshape(16, 4, 2, 2)
    x = torch.cat([torch.from_numpy(every).float(), torch.randn(4, 4, 2, 2),
                   torch.randn(4, 4, 2, 2) * 10])
    return net.eval(), x


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_table_model_is_bit_exact_in_csim(io, tmp_path):
    net, x = _model()
    graph = qfx.freeze(net, x[:1])
    assert [n.op for n in graph.nodes][1:] == ["tanh", "conv2d", "sigmoid", "conv2d", "softmax"]
    out_t = graph.edges[graph.outputs[0]].type
    with torch.no_grad():
        assert np.array_equal(qfx.run_graph(graph, x).raw[0], out_t.to_int(net(x)).numpy())
    project = qfx.export_hls(net, x[:1], tmp_path / "prj", board="ultra96", io=io, reuse=4,
                             on_budget="ignore", test_vectors=x[:2].numpy())
    report = qfx.csim(project, x, arith="both")
    assert report.bit_exact and report.mismatches == 0, str(report)
    firmware = (tmp_path / "prj" / "firmware")
    layers = (firmware / "qfx_layers.h").read_text()
    assert "BIND_STORAGE variable=table type=rom_2p" in layers
    assert (firmware / "weights" / "n_1_table.h").read_text().count("static const") == 1
