"""HPTQ: float model -> frozen graph (bit-exact in C-sim), power-of-two thresholds, criteria."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.ptq import PTQConfig, choose_int_bits, hptq
from qfx.ptq.thresholds import threshold


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 8), nn.Linear(8, 3))
    with torch.no_grad():  # non-trivial BN statistics; an almost non-negative hidden layer
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
        net[5].bias.add_(0.3)
    return net.eval()


def test_float_model_ptq_frozen_graph_is_bit_exact_in_csim(tmp_path):
    net = _cnn()
    x = torch.rand(64, 1, 6, 6)
    res = hptq(net, x, PTQConfig(weight_bits=6, act_bits=8, progress=False),
               eval_data=(x, torch.zeros(64, dtype=torch.long)))
    graph = res.graph
    # the calibrated model computes what its graph computes
    out = qfx.run_graph(graph, x[:8])
    out_t = graph.edges[graph.outputs[0]].type
    assert np.array_equal(out_t.from_int(out.raw[0]).reshape(8, -1),
                          res.model(x[:8]).numpy().reshape(8, -1))
    project = qfx.export_hls(graph, None, tmp_path / "prj", board="ultra96", reuse=4,
                             on_budget="ignore")
    report = qfx.csim(project, x[:8])
    assert report.bit_exact and report.mismatches == 0
    md = res.report.to_markdown()
    assert "real data" in md and "| weight |" in md and "| act |" in md


def test_qfx_ptq_top_level_returns_graph_and_model():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    graph, model = qfx.ptq(net, torch.randn(64, 4), PTQConfig(progress=False),
                           return_model=True)
    assert isinstance(graph, qfx.Graph) and not model.training


@pytest.mark.parametrize("criterion", ["mse", "mae", "noclip", "kl"])
def test_activation_thresholds_are_powers_of_two_and_cover_the_max(criterion):
    net = _cnn()
    x = torch.rand(32, 1, 6, 6)
    res = hptq(net, x, PTQConfig(act_criterion=criterion, shift_negative_correction=False,
                                 progress=False))
    acts = [r for r in res.report.layers if r.kind == "act"]
    assert acts
    for r in acts:
        t = float(r.thresholds)
        assert t > 0 and 2.0 ** round(np.log2(t)) == t
        if criterion == "noclip":  # the smallest power of two whose format holds the max
            lsb = t * 2.0 ** -7 if r.formats.startswith("ap_fixed") else t * 2.0 ** -8
            assert t - lsb >= r.max_abs and (r.max_abs == 0 or t / 2 - lsb / 2 < r.max_abs)
        else:
            assert t <= 2.0 ** np.ceil(np.log2(r.max_abs) + 1)


def test_no_clipping_criterion_covers_the_max_exactly():
    x = torch.tensor([[0.3, -1.7, 2.9]], dtype=torch.float64)
    ib, _ = choose_int_bits(x, 8, True, "noclip")
    t = threshold(int(ib), True)
    assert t == 4.0  # 2.9 needs [-4, 4 - 1/32]; [-2, 2) would clip
    x = torch.tensor([[0.0, 3.98]], dtype=torch.float64)
    assert int(choose_int_bits(x, 8, False, "noclip")[0]) == 2  # 3.98 <= 4 - 1/64
    x = torch.tensor([[0.0, 4.0]], dtype=torch.float64)
    assert int(choose_int_bits(x, 8, False, "noclip")[0]) == 3  # 4.0 > 4 - 1/64


def test_mse_clips_an_outlier_that_noclip_keeps():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(100000) * 0.1, torch.tensor([5.0])]).reshape(1, -1).double()
    mse = int(choose_int_bits(x, 4, True, "mse")[0])
    noclip = int(choose_int_bits(x, 4, True, "noclip")[0])
    assert mse < noclip


def test_weights_are_per_channel_powers_of_two_and_corrections_are_reported():
    net = _cnn()
    res = hptq(net, torch.rand(32, 1, 6, 6), PTQConfig(progress=False))
    conv = res.model.get_submodule("0")
    assert conv.weight_quantizer.per_channel
    w = conv.weight.detach().double().reshape(4, -1)
    for c, t in enumerate(conv.weight_quantizer.fixed_types):
        assert float(w[c].abs().max()) <= 2.0 ** (t.int_bits - 1)  # MSE never clips 4 bits up
    text = str(res.report)
    assert "bias correction" in text and "shift-negative correction on 5" in text


def test_bias_correction_reduces_the_mean_output_error():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    x = torch.rand(512, 16) + 0.5  # non-zero mean inputs: a biased error to correct
    errs = {}
    for on in (False, True):
        res = hptq(net, x, PTQConfig(weight_bits=3, bias_correction=on, progress=False))
        with torch.no_grad():
            errs[on] = float((res.model(x) - net(x).double()).mean(0).abs().mean())
    assert errs[True] < errs[False]
