"""Float BatchNormalization [+ Relu] + Quant / BipolarQuant in QONNX graphs imports as integer
thresholds that reproduce the source's float32 decisions: exhaustively on every input code
against qonnx's executor (onnxruntime's float32 BatchNormalization), and on Brevitas models the
tests build and export (a CNN with plain nn.BatchNorm2d + QuantReLU, a FINN-style BNN), == the
Brevitas model and qonnx, then bit-exact in C-simulation."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from torch import nn

import qfx
from qfx.backends.hls.export import export_hls
from qfx.frontends.onnx import OnnxImportError, import_onnx_model
from qfx.ir import run_graph

_DOM = "qonnx.custom_op.general"


def _bn_graph(relu: bool, bipolar: bool, out_bits: int = 3, rounding: str = "ROUND",
              ties: bool = False):
    """Quant(x; 8 bits, 2**-4) -> BatchNormalization (4 channels, two negative scales, one
    zero scale) [-> Relu] -> Quant(out_bits, 2**-2) | BipolarQuant. ``ties``: scales +-0.5,
    1.5, -0.25 with unit variance, no epsilon and zero mean/bias, so that every fourth input
    code lands exactly halfway between two output codes (in float32, exactly)."""
    rng = np.random.default_rng(5)
    c = 4
    consts = {"s": np.float32(2.0**-4), "z": np.float32(0), "b8": np.float32(8),
              "g": np.array([1.3, -0.7, 0.0, -2.1], np.float32),
              "beta": rng.normal(size=c).astype(np.float32),
              "mean": rng.normal(size=c).astype(np.float32),
              "var": rng.uniform(0.3, 2.0, size=c).astype(np.float32),
              "so": np.float32(2.0**-2), "bo": np.float32(out_bits), "one": np.float32(1)}
    if ties:
        consts.update(g=np.array([0.5, -0.5, 1.5, -0.25], np.float32),
                      beta=np.zeros(c, np.float32), mean=np.zeros(c, np.float32),
                      var=np.ones(c, np.float32))
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b8"], ["xq"], domain=_DOM, signed=1,
                              narrow=0, rounding_mode="ROUND"),
             helper.make_node("BatchNormalization", ["xq", "g", "beta", "mean", "var"], ["bn"],
                              epsilon=0.0 if ties else 1e-5)]
    last = "bn"
    if relu:
        nodes.append(helper.make_node("Relu", ["bn"], ["r"]))
        last = "r"
    if bipolar:
        nodes.append(helper.make_node("BipolarQuant", [last, "one"], ["y"], domain=_DOM))
    else:
        nodes.append(helper.make_node("Quant", [last, "so", "z", "bo"], ["y"], domain=_DOM,
                                      signed=int(not relu), narrow=0, rounding_mode=rounding))
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [256, c, 2]) for n in "xy"]
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    return helper.make_model(helper.make_graph(nodes, "bn", io[:1], io[1:], inits),
                             opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid(_DOM, 1)])


def _qonnx(model, x: np.ndarray) -> np.ndarray:
    """qonnx's executor on the batch x (the graph's batch dimension set to len(x))."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = x.shape[0]
    del model.graph.value_info[:]
    mw = ModelWrapper(model).transform(InferShapes())
    out = execute_onnx(mw, {mw.graph.input[0].name: x.astype(np.float32)})
    return out[mw.graph.output[0].name].astype(np.float64)


@pytest.mark.parametrize("relu,bipolar,rounding", [(True, False, "ROUND"),
                                                   (False, False, "HALF_UP"),
                                                   (False, False, "FLOOR"),
                                                   (False, True, "ROUND")])
def test_thresholds_equal_qonnx_on_every_input_code(relu, bipolar, rounding):
    model = _bn_graph(relu, bipolar, rounding=rounding)
    g = import_onnx_model(model)
    assert [n.op for n in g.nodes] == ["input", "threshold" if bipolar else "multithreshold"]
    codes = np.arange(-128, 128, dtype=np.float64) * 2.0**-4
    x = np.repeat(np.broadcast_to(codes[:, None, None], (256, 4, 1)), 2, axis=2)
    np.testing.assert_array_equal(run_graph(g, x).outputs[0], _qonnx(model, x))


@pytest.mark.parametrize("rounding", ["ROUND", "HALF_UP", "HALF_DOWN", "FLOOR", "DOWN"])
def test_ties_go_where_qonnx_sends_them(rounding):
    model = _bn_graph(False, False, out_bits=4, rounding=rounding, ties=True)
    g = import_onnx_model(model)
    codes = np.arange(-128, 128, dtype=np.float64) * 2.0**-4
    x = np.repeat(np.broadcast_to(codes[:, None, None], (256, 4, 1)), 2, axis=2)
    grid = x[:, :, 0] * np.array([0.5, -0.5, 1.5, -0.25]) * 4  # BN output in output LSBs
    assert ((grid % 1) == 0.5).sum() >= 100  # the ties are really there
    np.testing.assert_array_equal(run_graph(g, x).outputs[0], _qonnx(model, x))


def test_batchnorm_without_a_quant_is_refused_by_name():
    model = _bn_graph(True, False)
    model.graph.node[-1].op_type = "Identity"
    del model.graph.node[-1].input[1:]
    model.graph.node[-1].domain = ""
    del model.graph.node[-1].attribute[:]
    with pytest.raises(OnnxImportError, match="node 'bn' .*BatchNormalization.* only when its "
                       "output"):
        import_onnx_model(model)


def _brevitas_export(net: nn.Module, x: torch.Tensor, path) -> object:
    from brevitas.export import export_qonnx
    from qonnx.util.cleanup import cleanup_model

    export_qonnx(net.eval(), x[:1], export_path=str(path), dynamo=False)
    return cleanup_model(ModelWrapper(str(path))).model


def _randomize_bn(net: nn.Module) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1.0, 1.0)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(-1.5, 1.5)  # some negative scales
                m.bias.uniform_(-0.5, 0.5)


def test_brevitas_cnn_with_float_batchnorm_imports_exactly_and_csims(tmp_path):
    import brevitas.nn as qnn  # the interop extra: a missing one fails, never skips
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        Int8WeightPerTensorFixedPoint,
        Uint8ActPerTensorFixedPoint,
    )

    torch.manual_seed(0)
    net = nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=6),
        qnn.QuantConv2d(2, 4, 3, padding=1, bias=False,
                        weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=4),
        nn.BatchNorm2d(4),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=3),
        qnn.QuantConv2d(4, 3, 3, bias=False, weight_quant=Int8WeightPerTensorFixedPoint,
                        weight_bit_width=4),
        nn.BatchNorm2d(3),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4))
    _randomize_bn(net)
    x = torch.randn(64, 2, 6, 6)
    model = _brevitas_export(net, x, tmp_path / "cnn.onnx")
    g = import_onnx_model(model)
    assert [n.op for n in g.nodes].count("multithreshold") == 2
    xs = torch.cat([x, x * 8]).numpy()  # saturating inputs too
    got = run_graph(g, xs).outputs[0]
    np.testing.assert_array_equal(got, _qonnx(model, xs))
    with torch.no_grad():
        np.testing.assert_array_equal(got, net(torch.from_numpy(xs)).double().numpy())
    project = export_hls(g, tmp_path / "prj", board="ultra96", io="stream", reuse=4,
                         on_budget="ignore", test_vectors=xs[:2])
    report = qfx.csim(project, np.concatenate([xs[:3], xs[-3:]]), arith="both")
    assert report.bit_exact and report.mismatches == 0, str(report)


def test_finn_style_bnn_with_batchnorm_before_each_sign_imports_exactly(tmp_path):
    import brevitas.nn as qnn  # the interop extra: a missing one fails, never skips
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        SignedBinaryActPerTensorConst,
        SignedBinaryWeightPerTensorConst,
    )

    class BinW(SignedBinaryWeightPerTensorConst):
        scaling_const = 1.0  # +-1 weights (FINN's binary layers)

    class BinA(SignedBinaryActPerTensorConst):
        scaling_const = 1.0

    torch.manual_seed(1)
    net = nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8),
        qnn.QuantConv2d(1, 4, 3, bias=False, weight_quant=BinW),
        nn.BatchNorm2d(4),
        qnn.QuantIdentity(act_quant=BinA),
        qnn.QuantConv2d(4, 3, 3, bias=False, weight_quant=BinW),
        nn.BatchNorm2d(3),
        qnn.QuantIdentity(act_quant=BinA))
    _randomize_bn(net)
    x = torch.randn(64, 1, 7, 7)
    model = _brevitas_export(net, x, tmp_path / "bnn.onnx")
    g = import_onnx_model(model)
    ops = [n.op for n in g.nodes]
    assert ops.count("threshold") == 2 and "binary_conv2d" in ops
    xs = torch.cat([x, x * 8]).numpy()
    got = run_graph(g, xs).outputs[0]
    np.testing.assert_array_equal(got, _qonnx(model, xs))
    with torch.no_grad():
        np.testing.assert_array_equal(got, net(torch.from_numpy(xs)).double().numpy())
