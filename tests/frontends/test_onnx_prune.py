"""``import_onnx(prune=True)`` (the default, as ``qfx.freeze``): a Brevitas model with a dead
channel (zero weights) imports without it, and the import-time check against the source (qonnx)
still finds every output equal (``==``); ``prune=False`` keeps it."""

from __future__ import annotations

import numpy as np
import torch
from builders import brevitas_conv_fc, calibrated_brevitas, export_brevitas

from qfx.frontends.onnx import import_onnx
from qfx.ir import run_graph


def test_a_dead_brevitas_channel_is_pruned_and_the_source_check_stays_equal(tmp_path):
    shape = (2, 4, 4)
    model = calibrated_brevitas(brevitas_conv_fc(3, 4, 4, bias=False), shape)
    with torch.no_grad():  # conv channel 1: zero weights and no bias, a constant 0
        model.c.weight[1] = 0.0
    path = tmp_path / "dead.onnx"
    export_brevitas(model, shape, path)
    full = import_onnx(path, prune=False, check=16)
    graph = import_onnx(path, check=16)
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    assert full.edges[conv.output].shape[0] == 3 and graph.edges[conv.output].shape[0] == 2
    assert graph.meta["pruned_channels"][conv.output] == 1
    assert "pruned_channels" not in full.meta
    for g in (full, graph):
        assert g.meta["source_check"] == "qfx == qonnx on 16 random samples"
    x = np.random.default_rng(3).standard_normal((32, *shape)) * 2
    with torch.no_grad():
        ref = model(torch.from_numpy(x.astype(np.float32))).double().numpy()
    got = run_graph(graph, x)
    assert np.array_equal(got.raw[0], run_graph(full, x).raw[0])
    assert np.array_equal(got.outputs[0], ref)
