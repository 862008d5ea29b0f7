"""multithreshold in the ONNX backends: the float64 standard-op model (onnxruntime) and the
QONNX model (FINN's MultiThreshold, run by qonnx's executor) equal the frozen executor, and the
QONNX model imports back to a graph that computes the same outputs."""

from __future__ import annotations

import numpy as np
import torch
from builders import folded_threshold_cnn
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from qfx.backends.onnx import build_onnx_model, build_qonnx_model, run_onnx
from qfx.frontends.onnx import import_onnx_model
from qfx.ir import run_graph


def test_onnx_and_qonnx_exports_equal_the_executor_and_import_back():
    _, graph, x = folded_threshold_cnn()
    xs = torch.cat([x[:6], x[:6] * 16]).numpy()  # saturating too
    want = run_graph(graph, xs).outputs[0]
    np.testing.assert_array_equal(run_onnx(build_onnx_model(graph), xs)[0], want)
    qmodel = build_qonnx_model(graph, batch_size=12)
    ops = [n.op_type for n in qmodel.graph.node]
    assert ops.count("MultiThreshold") == 2 and "BatchNormalization" not in ops
    mw = ModelWrapper(qmodel)
    got = execute_onnx(mw, {mw.graph.input[0].name: xs.astype(np.float32)})
    np.testing.assert_array_equal(got[mw.graph.output[0].name].astype(np.float64), want)
    back = import_onnx_model(qmodel)
    assert [n.op for n in back.nodes].count("multithreshold") == 2
    np.testing.assert_array_equal(run_graph(back, xs).outputs[0], want)
