"""Brevitas models, built and exported here (QONNX via brevitas.export.export_qonnx, and one
TorchScript export returning a QuantTensor), import into qfx, equal Brevitas (``==``) on a
test set, and C-simulate bit-exactly."""

from __future__ import annotations

import logging

import brevitas.nn as qnn  # the interop extra; a missing one fails, never skips
import numpy as np
import pytest
import torch
from brevitas.quant import (
    Int8ActPerTensorFixedPoint as A8,
)
from brevitas.quant import (
    Int8WeightPerTensorFixedPoint as W8,
)
from brevitas.quant import (
    Uint8ActPerTensorFixedPoint as U8,
)
from builders import brevitas_conv_fc, calibrated_brevitas, export_brevitas, quant_value
from torch import nn

import qfx
from qfx.frontends.onnx import OnnxImportError, import_onnx
from qfx.ir import run_graph

A4 = A8.let(bit_width=4)


class _TwoReaders(nn.Module):
    """x read by an 8-bit and a 4-bit quantizer (two branches added), a float conv bias,
    quantized BatchNorm (a Reshape of a quantized constant), TruncAvgPool2d (Trunc), a global
    average pool exported as ReduceMean, a bias-free linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.q8 = qnn.QuantIdentity(act_quant=A8, return_quant_tensor=True)
        self.q4 = qnn.QuantIdentity(act_quant=A4, return_quant_tensor=True)
        self.a = qnn.QuantConv2d(2, 4, 3, padding=1, weight_quant=W8, bias=True)
        self.b = qnn.QuantConv2d(2, 4, 1, weight_quant=W8, bias=False)
        self.bn = qnn.BatchNorm2dToQuantScaleBias(4, weight_quant=W8, bias_quant=None)
        self.act = qnn.QuantReLU(act_quant=U8, return_quant_tensor=True)
        self.pool = qnn.TruncAvgPool2d(2, 2, bit_width=8, return_quant_tensor=True)
        self.gq = qnn.QuantIdentity(act_quant=A8, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(4, 3, weight_quant=W8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(self.q8(x)) + self.b(self.q4(x))
        y = self.pool(self.act(self.bn(y)))
        return self.fc(self.gq(quant_value(y).mean((2, 3))))


class _QuantTensorOut(nn.Module):
    """A TorchScript export whose output is a QuantTensor (scale/zero point/bit width become
    constant graph outputs); MatMul + Transpose of the quantized weight; global pooling by
    ReduceMean with keepdims=0."""

    def __init__(self) -> None:
        super().__init__()
        self.q = qnn.QuantIdentity(act_quant=A8, return_quant_tensor=True)
        self.c = qnn.QuantConv2d(1, 4, 3, weight_quant=W8, bias=False)
        self.r = qnn.QuantReLU(act_quant=U8, return_quant_tensor=True)
        self.gq = qnn.QuantIdentity(act_quant=A8, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(4, 3, weight_quant=W8, bias=False, return_quant_tensor=True)
        self.o = qnn.QuantIdentity(act_quant=A8, return_quant_tensor=True)

    def forward(self, x: torch.Tensor):
        y = self.r(self.c(self.q(x)))
        return self.o(self.fc(self.gq(quant_value(y).mean((2, 3)))))


def _brevitas(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.from_numpy(x.astype(np.float32)))
    return quant_value(out).double().numpy()


def _on_grid(graph: qfx.Graph, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """n test inputs in batches of the export's batch size: values on the input format's grid
    (as data in that format arrives), spread over 1.25 x its range."""
    t = graph.edges[graph.inputs[0]].type
    rng = np.random.default_rng(5)
    raw = rng.integers(int(t.raw_min * 1.25), int(t.raw_max * 1.25) + 1, (n, *shape))
    return np.ldexp(raw.astype(np.float64), -t.frac_bits)


@pytest.fixture(scope="module")
def two_readers(tmp_path_factory):
    shape = (2, 8, 8)
    model = calibrated_brevitas(_TwoReaders(), shape)
    path = tmp_path_factory.mktemp("brevitas") / "two_readers.onnx"
    export_brevitas(model, shape, path)
    return model, path, shape


def test_brevitas_cnn_imports_and_equals_brevitas(two_readers, caplog):
    model, path, shape = two_readers
    with caplog.at_level(logging.WARNING, logger="qfx.frontends.onnx"):
        graph = import_onnx(path)
    ops = [n.op for n in graph.nodes]
    assert "avgpool2d" in ops and "batchnorm" in ops
    # one explicit cast of the input, then the 8-bit and the 4-bit reader cast from it
    first = graph.nodes[0]
    readers = [n for n in graph.nodes if n.inputs == [first.output]]
    assert first.op == "input" and [n.op for n in readers] == ["input", "input"]
    finest = graph.out_type(first)
    r8, r4 = sorted((graph.out_type(n) for n in readers), key=lambda t: -t.width)
    assert graph.edges[graph.inputs[0]].type == finest and finest.frac_bits == r8.frac_bits
    assert r4.width == 4
    # the float conv bias and the float BatchNorm shift are said once each, naming the node
    floats = [r.getMessage() for r in caplog.records if "the float" in r.getMessage()]
    assert len(floats) == 2 and "(Conv): the float bias" in floats[0] and "(Add)" in floats[1]
    # on data in the input format, qfx == Brevitas (batches of the export's batch size 4)
    x = _on_grid(graph, 64, shape)
    ref = np.concatenate([_brevitas(model, x[i:i + 4]) for i in range(0, 64, 4)])
    assert np.array_equal(run_graph(graph, x).outputs[0], ref)
    # on raw off-grid floats, the 4-bit reader rounds the 8-bit grid's value: the import-time
    # check tells the user where qfx and the source differ, or that they agree
    assert graph.meta["source_check"].startswith(("qfx == qonnx", "qfx != qonnx"))


def test_brevitas_cnn_csim_bit_exact_on_raw_floats(two_readers, tmp_path):
    model, path, shape = two_readers
    graph = import_onnx(path, check=0)
    project = qfx.export_hls(graph, None, tmp_path / "prj", io="parallel", on_budget="ignore",
                             test_vectors=2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, *shape)) * np.array([1, 1, 1, 4, 4, 4]).reshape(6, 1, 1, 1)
    # compared with run_graph on the raw floats x (not on x already rounded to the input
    # format, which is how a double rounding of the input once passed as bit-exact); one
    # compile (the native path) to keep the suite fast: the import adds no new HLS op
    report = qfx.csim(project, x, opt="-O1")
    assert report.bit_exact and report.mismatches == 0, str(report)


def test_torchscript_quant_tensor_export(tmp_path):
    shape = (1, 6, 6)
    model = calibrated_brevitas(_QuantTensorOut(), shape)
    path = tmp_path / "qt.onnx"
    export_brevitas(model, shape, path)
    graph = import_onnx(path)  # the constant scale/zero-point/bit-width outputs are dropped
    assert len(graph.outputs) == 1 and graph.meta["source_check"].startswith("qfx == qonnx")
    import onnx

    names = [o.name for o in onnx.load(str(path)).graph.output]
    assert len(names) > 1
    picked = import_onnx(path, outputs=[names[0]], check=0)
    assert picked.outputs == graph.outputs
    with pytest.raises(OnnxImportError, match=f"available: {names[0]}$"):
        import_onnx(path, outputs=["nope"], check=0)
    x = _on_grid(graph, 32, shape)
    assert np.array_equal(run_graph(graph, x).outputs[0], _brevitas(model, x))


def test_float_biases_are_the_source_in_exact_arithmetic(tmp_path):
    """The documented comparison: qfx computes the source's float32 constants exactly, i.e.
    == Brevitas run in float64 (exact here), on raw float inputs; against Brevitas' float32
    the import-time check reports the differences in float32 ulps."""
    shape = (2, 4, 4)
    model = calibrated_brevitas(brevitas_conv_fc(4, 4, 5, bias=True), shape)
    path = tmp_path / "fb.onnx"
    export_brevitas(model, shape, path)
    graph = import_onnx(path, check=16)
    assert graph.meta["source_check"].startswith("qfx != qonnx on 16 random samples")
    assert "float32 ulps" in graph.meta["source_check"]
    x = np.random.default_rng(2).standard_normal((64, *shape)) * 2
    with torch.no_grad():
        exact = model.double()(torch.from_numpy(x)).numpy()
    assert np.array_equal(run_graph(graph, x).outputs[0], exact)
