"""K-hot weights and BatchNorm scales in qfx layers: the frozen executor equals eval (`==` on
raw integers, saturation included), the IR carries CSD digits that rebuild every constant,
and the cost report finds no multiplier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx import KHotQuantizer
from qfx.fixed.khot import csd_weight
from qfx.frontends.pytorch import freeze
from qfx.ir import cost_report, load_graph, run_graph, save_graph
from qfx.nn import (
    QBatchNorm1d,
    QBatchNorm2d,
    QConfig,
    QConv2d,
    QFlatten,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
    quantize_model,
)


def _assert_exact(model: nn.Module, x: torch.Tensor, scales=(1.0, 8.0, 64.0)):
    model.eval()
    graph = freeze(model, x[:1])
    out_t = graph.edges[graph.outputs[0]].type
    for s in scales:
        with torch.no_grad():
            expected = model(x * s)
        res = run_graph(graph, x * s)
        assert np.array_equal(out_t.to_int(expected).numpy(), res.raw[0]), f"scale {s}"
        assert np.array_equal(expected.numpy(), res.outputs[0])
    return graph


def _check_digits(node, key: str, k: int) -> None:
    digits = node.params[f"{key}_digits"]
    raw = node.params[key]
    assert node.attrs[f"{key}_khot"] == k
    assert digits.shape == (*raw.shape, k, 2)
    rebuilt = (digits[..., 0] * (1 << digits[..., 1])).sum(-1)
    assert np.array_equal(rebuilt, raw)
    assert (np.count_nonzero(digits[..., 0], axis=-1) <= k).all()
    assert torch.equal(torch.from_numpy(np.count_nonzero(digits[..., 0], axis=-1)),
                       csd_weight(torch.from_numpy(raw)))  # minimal digit counts


@pytest.mark.parametrize("k, per_channel, overflow", [(1, False, "SAT"), (2, True, "WRAP"),
                                                      (3, True, "SAT_SYM")])
def test_k_hot_conv_bn_linear_freeze_exactly(k, per_channel, overflow):
    torch.manual_seed(k)
    cfg = QConfig(weight_khot=k, bn_scale_khot=k, per_channel_weights=per_channel,
                  act_overflow=overflow, act_width=6)
    with qfx.config(cfg):
        net = nn.Sequential(QInput(8), QConv2d(3, 6, 3, padding=1), QBatchNorm2d(6), QReLU(),
                            QMaxPool2d(2), QFlatten(), QLinear(6 * 9, 8), QBatchNorm1d(8),
                            QLinear(8, 3, bias=False))
    x = torch.randn(32, 3, 6, 6)
    net.train()
    for _ in range(2):
        net(x)
    graph = _assert_exact(net, x)
    weighted = [n for n in graph.nodes if n.op in ("conv2d", "dense")]
    bns = [n for n in graph.nodes if n.op == "batchnorm"]
    assert len(weighted) == 3 and len(bns) == 2
    for n in weighted:
        _check_digits(n, "weight", k)
    for n in bns:
        _check_digits(n, "scale", k)
    report = cost_report(graph)
    assert report.dsp_free and report.total.multipliers == 0
    assert report.total.shift_add_terms > 0
    assert "0 DSP" in str(report)


def test_layer_level_k_hot_via_config_and_quantize_model():
    torch.manual_seed(5)
    float_net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 36, 5))
    float_net.train()
    with torch.no_grad():
        for _ in range(3):
            float_net(torch.randn(64, 1, 8, 8))
    x = torch.rand(64, 1, 8, 8)
    q = quantize_model(float_net.eval(), {"bits": 8, "weight_khot": 2, "bn_scale_khot": 1}, x)
    assert isinstance(q.get_submodule("0").weight_quantizer, KHotQuantizer)
    assert isinstance(q.get_submodule("1").scale_quantizer, KHotQuantizer)
    graph = _assert_exact(q, x)
    assert cost_report(graph).dsp_free
    # per layer: a layer built with its own config
    layer = QLinear(4, 2, config=QConfig(weight_khot=1))
    assert layer.weight_quantizer.k == 1


def test_digits_survive_save_and_load_and_corruption_is_refused(tmp_path):
    torch.manual_seed(2)
    with qfx.config(weight_khot=2):
        net = nn.Sequential(QInput(8), QLinear(6, 4))
    x = torch.randn(32, 6)
    with qfx.calibration(net):
        net(x)
    graph = freeze(net.eval(), x[:1])
    loaded = load_graph(save_graph(graph, tmp_path / "k.qfx.npz"))
    node = loaded.nodes[-1]
    assert np.array_equal(node.params["weight_digits"], graph.nodes[-1].params["weight_digits"])
    assert node.attrs["weight_khot"] == 2
    assert np.array_equal(run_graph(loaded, x).raw[0], run_graph(graph, x).raw[0])
    bad = node.params["weight_digits"].copy()
    bad[0, 0, 0, 1] += 1
    node.params["weight_digits"] = bad
    with pytest.raises(ValueError, match="do not rebuild weight"):
        node.validate()
    del node.attrs["weight_khot"]
    with pytest.raises(ValueError, match="go together"):
        node.validate()


def test_training_keeps_weights_k_hot_and_learns():
    torch.manual_seed(3)
    with qfx.config(weight_khot=1, weight_width=6):
        net = nn.Sequential(QInput(8), QLinear(8, 16), QReLU(), QLinear(16, 2))
    x = torch.randn(256, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    net.train()
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    net.eval()
    for layer in (net[1], net[3]):
        codes = layer.weight_quantizer.to_int(layer.weight)
        assert bool((csd_weight(codes) <= 1).all())


def test_k_hot_config_validation():
    with pytest.raises(ValueError, match="weight_khot must be None or an integer"):
        QConfig(weight_khot=0)
    with pytest.raises(ValueError, match="bn_scale_khot"):
        QConfig(bn_scale_khot=1.5)
    assert QConfig.from_dict({"bits": 6, "weight_khot": 2}).weight_khot == 2
    assert QConfig().weight_khot is None and QConfig().bn_scale_khot is None


def test_cost_report_counts_multipliers_without_k_hot():
    torch.manual_seed(4)
    net = nn.Sequential(QInput(8), QLinear(6, 4), QBatchNorm1d(4))
    x = torch.randn(64, 6)
    net.train()
    net(x)
    graph = freeze(net.eval(), x[:1])
    report = cost_report(graph)
    dense = graph.nodes[1]
    w = dense.params["weight"]
    nontrivial = int(((np.abs(w) & (np.abs(w) - 1)) != 0).sum())
    assert report.node(dense.name).multipliers == nontrivial > 0
    assert not report.dsp_free
