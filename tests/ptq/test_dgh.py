"""DGH: synthetic calibration data from BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qfx
from qfx.ptq import PTQConfig, hptq, load_calibration_data


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    net.train()
    with torch.no_grad():  # realistic statistics: those of "real" data (a bright disc)
        yy, xx = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
        disc = ((yy - 2.5) ** 2 + (xx - 2.5) ** 2 < 5).float()
        for _ in range(20):
            net(disc * torch.rand(32, 1, 1, 1) + 0.1 * torch.rand(32, 1, 6, 6))
    return net.eval()


def test_dgh_reduces_the_bn_statistics_loss_and_is_deterministic(tmp_path):
    net = _bn_net()
    kw = dict(iterations=40, lr=0.1, progress=False, return_losses=True)
    x1, l1 = qfx.generate_calibration_data(net, 16, (1, 6, 6), seed=3,
                                           save=tmp_path / "gen.npz", **kw)
    x2, _ = qfx.generate_calibration_data(net, 16, (1, 6, 6), seed=3, **kw)
    x3, _ = qfx.generate_calibration_data(net, 16, (1, 6, 6), seed=4, **kw)
    assert x1.shape == (16, 1, 6, 6)
    assert l1["bn_loss_after"] < 0.5 * l1["bn_loss_before"]
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    loaded, kind = load_calibration_data(tmp_path / "gen.npz")
    assert kind == "generated" and torch.equal(loaded, x1)
    res = hptq(net, loaded, PTQConfig(progress=False), calib_kind="generated")
    assert "GENERATED" in res.report.to_markdown()


def test_dgh_refuses_a_model_without_batchnorm():
    with pytest.raises(ValueError, match="no BatchNorm"):
        qfx.generate_calibration_data(nn.Sequential(nn.Linear(4, 2)), 8, (4,), progress=False)
