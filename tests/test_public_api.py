"""The documented top-level entry points, used the way the README shows them."""

import numpy as np
import torch
from torch import nn

import qfx


def test_quantize_train_freeze_export_csim_through_the_top_level_api(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(64, 1, 6, 6)
    float_net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                              nn.Linear(64, 3))
    model = qfx.quantize_model(float_net, qfx.QConfig.uniform(8), x)
    project = qfx.export_hls(model, x[:1], tmp_path / "prj", board="ultra96",
                             test_vectors=x[:16].numpy())
    report = qfx.csim(project, x[:16] * 4)  # scaled: some values saturate
    assert report.bit_exact and report.mismatches == 0
    graph = qfx.freeze(model, x[:1])
    assert np.array_equal(report.reference, qfx.run_graph(graph, x[:16] * 4).raw[0].reshape(
        report.reference.shape))
    onnx_path = qfx.export_onnx(graph, tmp_path / "m.onnx")
    assert onnx_path.is_file()
