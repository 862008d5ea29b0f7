"""qfx's QONNX of a CNN (digits_cnn at 6 bits) goes through hls4ml's ONNX route (qonnx
cleanup, channels-last, hls4ml's converter), and still imports back into qfx identically."""

from __future__ import annotations

import hls4ml  # a required dependency: missing fails, never skips
import numpy as np
import torch

import qfx
from qfx.backends.onnx import export_qonnx
from qfx.frontends.onnx import import_onnx
from qfx.ir import run_graph
from qfx.zoo.models import digits_cnn


def test_digits_cnn_qonnx_is_accepted_by_hls4ml(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    torch.manual_seed(0)
    calib = torch.rand(64, 1, 8, 8)
    model = qfx.quantize_model(digits_cnn().eval(), {"bits": 6}, calib).eval()
    graph = qfx.freeze(model, calib[:1])
    path = export_qonnx(graph, tmp_path / "digits6.onnx")
    back = import_onnx(path)  # qfx's own import, checked against qonnx's executor
    assert back.meta["source_check"].startswith("qfx == qonnx")
    x = calib.double().numpy() * 2 - 0.5
    assert np.array_equal(run_graph(back, x).raw[0], run_graph(graph, x).raw[0])
    m = cleanup_model(ModelWrapper(str(path)))
    m = cleanup_model(m.transform(ConvertToChannelsLastAndClean()).transform(GemmToMatMul()))
    assert "Unsqueeze" not in {n.op_type for n in m.graph.node}
    cfg = hls4ml.utils.config.config_from_onnx_model(m, granularity="name", backend="Vitis")
    h = hls4ml.converters.convert_from_onnx_model(m, output_dir=str(tmp_path / "h4"),
                                                  io_type="io_stream", backend="Vitis",
                                                  hls_config=cfg)
    kinds = [layer.class_name for layer in h.get_layers()]
    assert kinds.count("Conv2D") == 2 and "Dense" in kinds
