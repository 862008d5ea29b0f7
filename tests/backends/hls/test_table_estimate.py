"""The estimate of table activations reads the same plan as the writer: each table is a ROM of
2**W_in entries of the output width (one dual-port copy per two lanes), softmax adds its exp and
reciprocal ROMs and one multiplier per parallel product; both architectures."""

from __future__ import annotations

import torch
from builders import zoo_model

import qfx
from qfx.backends.hls.estimate import estimate_resources
from qfx.nn import QConfig, QInput, QLinear, QSigmoid


def test_softmax_roms_and_multipliers_are_estimated():
    model, calib = zoo_model("digits_mlp_softmax", {"bits": 8})
    graph = qfx.freeze(model, calib[:1])
    node = graph.nodes[-1]
    assert node.op == "softmax" and node.params["recip_table"].size == 4096
    for io in ("parallel", "stream"):
        row = next(r for r in estimate_resources(graph, reuse=4, board="ultra96", io=io).layers
                   if r.node == node.name)
        # 4096 x 16-bit reciprocal ROM: 64 kbit, at least 4 BRAM18K; exp ROM 256 x 8 bits
        assert row.bram18k >= 4, row
        assert row.multipliers == 3 and row.dsp == 3  # 10 products at reuse 4
        assert any("reciprocal ROM 4096x16 bits" in n for n in row.notes)


def test_table_rom_copies_follow_the_lanes():
    torch.manual_seed(0)
    cfg = QConfig(act_width=10)
    net = torch.nn.Sequential(QInput(8, config=cfg), QLinear(4, 16, config=cfg),
                              QSigmoid(config=cfg))
    with qfx.calibration(net):
        net(torch.randn(32, 4))
    graph = qfx.freeze(net.eval(), torch.randn(1, 4))
    rows = {r: next(x for x in estimate_resources(graph, reuse=r, io="parallel").layers
                    if x.op == "sigmoid") for r in (16, 4, 1)}
    assert [rows[r].parallel for r in (16, 4, 1)] == [1, 4, 16]
    # a 1024 x 10-bit ROM (one BRAM18K) per two lanes
    assert [rows[r].bram18k for r in (16, 4, 1)] == [1, 2, 8]
    assert "1024-entry ROM (10240 bits) per two lanes" in rows[1].notes
