"""``import_onnx(prune=True)`` (the default, as ``qfx.freeze``): a Brevitas model with a dead
channel (zero weights) imports without it, and the import-time check against the source (qonnx)
still finds every output equal (``==``); ``prune=False`` keeps it."""

from __future__ import annotations

import warnings

import brevitas.nn as qnn  # the interop extra; a missing one fails, never skips
import numpy as np
import torch
from brevitas.export import export_qonnx
from brevitas.quant import Int8ActPerTensorFixedPoint as A8
from brevitas.quant import Int8WeightPerTensorFixedPoint as W8
from brevitas.quant import Uint8ActPerTensorFixedPoint as U8
from builders import calibrated_brevitas, quant_value
from torch import nn

from qfx.frontends.onnx import import_onnx
from qfx.ir import run_graph


class _DeadChannel(nn.Module):
    """conv (channel 1: zero weights, no bias: a constant 0) -> ReLU -> flatten -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.q = qnn.QuantIdentity(act_quant=A8, return_quant_tensor=True)
        self.c = qnn.QuantConv2d(2, 3, 3, padding=1, weight_quant=W8, bias=False)
        self.r = qnn.QuantReLU(act_quant=U8, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(3 * 4 * 4, 4, weight_quant=W8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.r(self.c(self.q(x)))
        return self.fc(torch.flatten(quant_value(y), 1))


def test_a_dead_brevitas_channel_is_pruned_and_the_source_check_stays_equal(tmp_path):
    shape = (2, 4, 4)
    model = calibrated_brevitas(_DeadChannel(), shape)
    with torch.no_grad():
        model.c.weight[1] = 0.0
    path = tmp_path / "dead.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(4, *shape), str(path), dynamo=False)
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
