"""ops-window: the ONNX export of every op ops-window adds (conv1d, leaky_relu, hardsigmoid,
hardswish, average pooling with padding / ceil_mode / a reciprocal per position) runs in
onnxruntime with outputs equal (==) to the executor's, on random and saturating inputs."""

from __future__ import annotations

import numpy as np
import pytest
from builders import conv1d_ops, window_ops

import qfx
from qfx.backends.onnx import build_onnx_model, run_onnx


@pytest.mark.parametrize("make", [window_ops, conv1d_ops])
def test_window_ops_export_to_onnx_exactly(make):
    model, calib = make()
    graph = qfx.freeze(model, calib[:1])
    onnx_model = build_onnx_model(graph)
    for x in (calib.numpy().astype(np.float64), calib.numpy().astype(np.float64) * 8):
        got = run_onnx(onnx_model, x)[0]
        assert np.array_equal(got, qfx.run_graph(graph, x).outputs[0])
