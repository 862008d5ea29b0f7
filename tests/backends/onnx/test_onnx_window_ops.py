"""ops-window: the ONNX and QONNX exports of every op ops-window adds (conv1d, leaky_relu,
hardsigmoid, hardswish, average pooling with padding / ceil_mode / a reciprocal per position)
run in onnxruntime / the qonnx executor with outputs equal (==) to the executor's, on random and
saturating inputs."""

from __future__ import annotations

import numpy as np
import pytest
from builders import conv1d_ops, window_ops

import qfx
from qfx.backends.onnx import OnnxExportError, build_onnx_model, build_qonnx_model, run_onnx
from qfx.nn import QHardSigmoid, QHardSwish


def _qonnx_run(model, x: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    mw = ModelWrapper(model)
    return execute_onnx(mw, {mw.graph.input[0].name: x.astype(np.float32)})[
        mw.graph.output[0].name]


def _narrow_gates(model) -> None:
    """An 8-bit 1/6 (the default 16 bits makes hardswish's exact product wider than float32's
    24 exact bits, which export_qonnx refuses by node name)."""
    for name, m in list(model.named_modules()):
        if isinstance(m, (QHardSigmoid, QHardSwish)):
            new = type(m)(scale_width=8)
            new.output_quantizer = m.output_quantizer
            model.add_submodule(name, new)


@pytest.mark.parametrize("make", [window_ops, conv1d_ops])
def test_window_ops_export_to_onnx_and_qonnx_exactly(make):
    model, calib = make(6, pool_recip_width=8)
    graph = qfx.freeze(model, calib[:1])
    x = np.concatenate([calib[:4].numpy(), calib[4:8].numpy() * 8]).astype(np.float32)
    onnx_model = build_onnx_model(graph)
    for xx in (calib.numpy().astype(np.float64), x.astype(np.float64)):
        assert np.array_equal(run_onnx(onnx_model, xx)[0], qfx.run_graph(graph, xx).outputs[0])
    with pytest.raises(OnnxExportError, match=r"\(hardswish\).*float32"):
        build_qonnx_model(graph)
    _narrow_gates(model)
    graph = qfx.freeze(model, calib[:1])
    onnx_model = build_qonnx_model(graph, batch_size=x.shape[0])
    got = _qonnx_run(onnx_model, x).astype(np.float64)
    assert np.array_equal(got, qfx.run_graph(graph, x.astype(np.float64)).outputs[0])
