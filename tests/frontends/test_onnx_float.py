"""Float ONNX -> torch.nn: the zoo's float models round-trip through torch.onnx.export."""

from __future__ import annotations

import io
import warnings

import onnx
import pytest
import torch
from torch import nn

from qfx.frontends.onnx_float import OnnxFloatImportError, onnx_to_torch
from qfx.zoo import get_model


def _export(model: nn.Module, x: torch.Tensor, **kw) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, buf, dynamo=False, **kw)
    return onnx.load_from_string(buf.getvalue())


def _trained_bn(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


@pytest.mark.parametrize("name, shape", [("digits_cnn", (1, 8, 8)), ("resnet8", (3, 32, 32))])
@pytest.mark.parametrize("keep_bn", [False, True])
def test_zoo_float_model_round_trips_within_float_rounding(name, shape, keep_bn):
    torch.manual_seed(0)
    x = torch.rand(4, *shape)
    model = _trained_bn(get_model(name), x)
    kw = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False} \
        if keep_bn else {}
    proto = _export(model, x[:1], **kw)
    ops = {n.op_type for n in proto.graph.node}
    assert ("BatchNormalization" in ops) == keep_bn
    back = onnx_to_torch(proto)
    with torch.no_grad():
        ref, got = model(x), back(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_matmul_add_reshape_clip_and_global_pool():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    m = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Reshape", ["p", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "m"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["y"])]
    inits = [numpy_helper.from_array(v, n) for n, v in (
        ("w", w), ("m", m), ("b", b), ("lo", np.array(0, np.float32)),
        ("hi", np.array(6, np.float32)), ("shape", np.array([0, -1], np.int64)))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 5, 5])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])], inits)
    back = onnx_to_torch(helper.make_model(graph))
    x = torch.randn(2, 2, 5, 5)
    ref = torch.nn.functional.conv2d(x, torch.from_numpy(w), padding=1).clamp(0, 6)
    ref = ref.mean((2, 3)) @ torch.from_numpy(m) + torch.from_numpy(b)
    torch.testing.assert_close(back(x), ref, rtol=1e-5, atol=1e-5)


def test_unsupported_op_is_refused_by_name():
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="sig")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(OnnxFloatImportError, match="'sig'.*Sigmoid"):
        onnx_to_torch(helper.make_model(graph))
