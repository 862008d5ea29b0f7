"""The (Q)ONNX importer takes 1-D Conv, LeakyRelu (2**-k), HardSigmoid, HardSwish, Clip (ReLU6),
AveragePool with pads / ceil_mode / count_include_pad, F.pad's constant Pad (its shape arithmetic
folded) and qfx's own QONNX export of the table ops (sigmoid, tanh, exp, softmax): each imported
graph equals its source (``check_against_source``, ``==``) and C-simulates bit-exactly on both
arithmetic paths; what is not exact is refused in one line naming the node."""

from __future__ import annotations

import io
import warnings

import brevitas.nn as qnn  # the interop extra; a missing one fails, never skips
import numpy as np
import onnx
import pytest
import qonnx.custom_op.general  # noqa: F401  (the Quant domain)
import torch
import torch.nn.functional as F
from brevitas.export import export_qonnx
from brevitas.quant import Int8ActPerTensorFixedPoint as A8
from brevitas.quant import Int8WeightPerTensorFixedPoint as W8
from brevitas.quant import Uint8ActPerTensorFixedPoint as U8
from builders import calibrated_brevitas
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import qfx
from qfx.backends.onnx import build_qonnx_model
from qfx.backends.onnx._common import QONNX_DOMAIN
from qfx.fixed import FixedQuantizer
from qfx.frontends.onnx import OnnxImportError, check_against_source, import_onnx_model
from qfx.nn import (
    QConfig,
    QConv1d,
    QExp,
    QFlatten,
    QInput,
    QLeakyReLU,
    QLinear,
    QSigmoid,
    QSoftmax,
    QTanh,
)


class _Window2d(nn.Module):
    """Plain torch ops between Brevitas quantizers: LeakyReLU(1/8), Hardswish, Hardsigmoid,
    a ceil_mode average pool and a padded one without the padding in the divisor, F.pad,
    ReLU6. (With both padding and ceil_mode PyTorch drops a last window that starts in the
    padding, as onnxruntime and qfx do; onnx's shape inference does not, so qonnx's executor
    cannot run such a model: the importer takes it all the same.)"""

    def __init__(self) -> None:
        super().__init__()
        self.q_in = qnn.QuantIdentity(act_quant=A8.let(bit_width=6))
        self.q1 = qnn.QuantIdentity(act_quant=A8)
        self.q2 = qnn.QuantIdentity(act_quant=A8.let(bit_width=14))
        self.q3 = qnn.QuantIdentity(act_quant=U8.let(bit_width=12))
        self.q4 = qnn.QuantIdentity(act_quant=U8.let(bit_width=12))
        self.q5 = qnn.QuantIdentity(act_quant=U8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.q1(F.leaky_relu(self.q_in(x), 0.125))
        x = self.q3(F.hardsigmoid(self.q2(F.hardswish(x))))
        x = self.q4(F.avg_pool2d(x, 2, 2, ceil_mode=True))
        x = self.q4(F.avg_pool2d(x, 2, 2, padding=1, count_include_pad=False))
        return self.q5(F.relu6(F.pad(x, (1, 0, 2, 1)) * 8))


class _Conv1d(nn.Module):
    """A Brevitas 1-D convolution (stride 2, padding, grouped) and a LeakyReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.q_in = qnn.QuantIdentity(act_quant=A8)
        self.conv = qnn.QuantConv1d(2, 4, 3, stride=2, padding=1, groups=2, weight_quant=W8,
                                    bias=False)
        self.q_out = qnn.QuantIdentity(act_quant=A8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q_out(F.leaky_relu(self.conv(self.q_in(x)), 0.25))


class _GraphOps(nn.Module):
    """Concat, nearest upsampling, a per-channel gate from a global max pool (Mul)."""

    def __init__(self) -> None:
        super().__init__()
        self.q_in = qnn.QuantIdentity(act_quant=A8)
        self.q_half = qnn.QuantIdentity(act_quant=A8)
        self.q_gate = qnn.QuantIdentity(act_quant=A8)
        self.q_out = qnn.QuantIdentity(act_quant=A8.let(bit_width=16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.q_in(x)
        y = F.interpolate(torch.cat([x, self.q_half(x * 0.5)], 1), scale_factor=2,
                          mode="nearest")
        return self.q_out(y * self.q_gate(F.adaptive_max_pool2d(y, 1)))


def _brevitas_qonnx(model: nn.Module, shape: tuple[int, ...]) -> onnx.ModelProto:
    """Brevitas' QONNX export (TorchScript path) of the calibrated model, in memory."""
    model = calibrated_brevitas(model, shape, spread=2.0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(1, *shape), buf, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def _import_checked(model: onnx.ModelProto, samples: int = 16) -> qfx.Graph:
    graph = import_onnx_model(model, check=0)
    names = [o.name for o in model.graph.output]
    verdict = check_against_source(graph, model, names, samples=samples)
    assert verdict.equal, verdict.line()
    return graph


@pytest.fixture(scope="module")
def window2d() -> qfx.Graph:
    return _import_checked(_brevitas_qonnx(_Window2d(), (2, 5, 5)))


def test_brevitas_window_ops_import_and_equal_the_source(window2d):
    ops = [n.op for n in window2d.nodes]
    assert ops == ["input", "leaky_relu", "hardswish", "hardsigmoid", "avgpool2d",
                   "avgpool2d", "pad", "batchnorm", "hardtanh"]
    ceil, padded = window2d.nodes[4:6]
    assert ceil.attrs["ceil_mode"] is True and padded.attrs["padding"] == [1, 1]
    for pool in (ceil, padded):  # 1/4, 1/2, 1 by position
        assert sorted(np.unique(pool.params["recip"]).tolist()) == [1, 2, 4]
    swish = window2d.nodes[2]
    assert swish.attrs["scale_raw"] * 2.0 ** -swish.attrs["scale_type"].frac_bits == \
        float(np.float32(1 / 6))


def test_brevitas_conv1d_imports_and_equals_the_source():
    graph = _import_checked(_brevitas_qonnx(_Conv1d(), (2, 9)))
    assert [n.op for n in graph.nodes] == ["input", "conv1d", "leaky_relu"]
    conv = graph.nodes[1]
    assert (conv.attrs["stride"], conv.attrs["padding"], conv.attrs["groups"]) == (2, 1, 2)


def test_brevitas_graph_ops_import_and_equal_the_source():
    graph = _import_checked(_brevitas_qonnx(_GraphOps(), (2, 3, 3)))
    assert [n.op for n in graph.nodes] == ["input", "batchnorm", "concat", "upsample",
                                           "maxpool2d", "input", "mul"]


def _tables_1d() -> tuple[nn.Module, torch.Tensor]:
    """qfx.nn: a 1-D conv, a leaky ReLU, tanh, sigmoid, exp and softmax (the table ops)."""
    torch.manual_seed(3)
    cfg = QConfig(act_width=7, weight_width=6, act_overflow="SAT")
    net = nn.Sequential(QInput(7, config=cfg), QConv1d(2, 3, 3, padding=1, config=cfg),
                        QLeakyReLU(0.25, config=cfg), QTanh(config=cfg), QFlatten(),
                        QLinear(12, 5, config=cfg), QSigmoid(config=cfg),
                        QLinear(5, 4, config=cfg), QExp(config=cfg), QSoftmax(config=cfg))
    net[0].output_quantizer = FixedQuantizer(7, True, "RND", "SAT", int_bits=3)
    x = torch.randn(64, 2, 4) * 2
    with qfx.calibration(net):
        net(x)
    return net.eval(), x


@pytest.fixture(scope="module")
def tables_1d():
    net, x = _tables_1d()
    graph = qfx.freeze(net, x[:1])
    model = build_qonnx_model(graph)
    return graph, model, x


def test_qfx_qonnx_tables_and_conv1d_import_back_to_the_same_graph(tables_1d):
    graph, model, x = tables_1d
    back = _import_checked(model)
    assert [n.op for n in back.nodes] == [n.op for n in graph.nodes]
    for a, b in zip(graph.nodes, back.nodes, strict=True):
        assert graph.out_type(a) == back.out_type(b)
        assert a.attrs == b.attrs  # formats, tables' formats, conv1d geometry
        assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    xs = x.double().numpy()
    assert np.array_equal(qfx.run_graph(back, xs).raw[0], qfx.run_graph(graph, xs).raw[0])


# The tables + conv1d re-import is the frozen graph itself (asserted above), whose ops' C++ is
# proven by their own C-sim tests; only the Brevitas window model needs its own compile.
def test_imported_graph_csim_bit_exact_on_both_paths(window2d, tmp_path):
    graph = window2d
    shape = graph.edges[graph.inputs[0]].shape
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, *shape)) * np.array([1, 1, 1, 8, 8, 8]).reshape(
        (6,) + (1,) * len(shape))  # random, then saturating
    project = qfx.export_hls(graph, None, tmp_path / "prj", io="parallel",
                             on_budget="ignore", test_vectors=2)
    report = qfx.csim(project, x, arith="both", opt="-O1")
    assert report.bit_exact and report.mismatches == 0 and report.samples == 6, str(report)


# ---------------------------------------------------------------------- refused, one line each
def _one_op(op: str, inputs: list[str], attrs: dict, consts: dict,
            shape: tuple[int, ...] = (1, 2, 4, 4)) -> onnx.ModelProto:
    """x -> Quant(8 bits, LSB 2**-4) -> q -> op(inputs) -> y."""
    q = helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], domain=QONNX_DOMAIN, signed=1,
                         narrow=0, rounding_mode="ROUND")
    inits = [numpy_helper.from_array(np.float32(v), n)
             for n, v in (("s", 2.0**-4), ("z", 0.0), ("b", 8.0))]
    inits += [numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items()]
    g = helper.make_graph(
        [q, helper.make_node(op, inputs, ["y"], name="bad", **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"d{i}" for i in shape])],
        inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19),
                                               helper.make_opsetid(QONNX_DOMAIN, 1)])


@pytest.mark.parametrize("op, inputs, attrs, consts, match", [
    ("LeakyRelu", ["q"], {"alpha": 0.1}, {},
     r"node 'bad' \(LeakyRelu\): slope alpha=0.10000000149011612 is not a power of two"),
    ("HardSigmoid", ["q"], {"alpha": 0.2, "beta": 0.25}, {},
     r"node 'bad' \(HardSigmoid\): beta=0.25; qfx's hardsigmoid adds exactly 1/2"),
    ("AveragePool", ["q"], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
     {},
     r"node 'bad' \(AveragePool\): a window's divisor 9 is not a power of two"),
    ("AveragePool", ["q"], {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}, {},
     r"node 'bad' \(AveragePool\): asymmetric pads \[1, 1, 0, 0\]"),
    ("AveragePool", ["q"], {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}, {},
     r"node 'bad' \(AveragePool\): auto_pad=SAME_UPPER pads \[1, 1\] cells, not the same"),
    ("Conv", ["q", "w"], {"pads": [1, 0]}, {"w": np.ones((2, 2, 3), np.float32)},
     r"node 'bad' \(Conv\): asymmetric pads \[1, 0\]"),
    ("Slice", ["q", "st", "en", "ax"], {}, {"st": np.int64([0]), "en": np.int64([1]),
                                            "ax": np.int64([1])},
     r"node 'bad' \(Slice\): Slice of a computed tensor is only supported as the start of "
     r"qfx's QONNX softmax"),
])
def test_inexact_forms_are_refused_in_one_line_naming_the_node(op, inputs, attrs, consts,
                                                                match):
    shape = (1, 2, 8) if op == "Conv" else (1, 2, 4, 4)
    with pytest.raises(OnnxImportError, match=match) as err:
        import_onnx_model(_one_op(op, inputs, attrs, consts, shape))
    assert "\n" not in str(err.value)


def test_auto_pad_same_with_an_even_total_is_the_symmetric_padding():
    graph = _import_checked(_one_op("AveragePool", ["q"], {"kernel_shape": [4, 1],
                                                           "strides": [2, 1],
                                                           "count_include_pad": 1,
                                                           "auto_pad": "SAME_UPPER"}, {}))
    assert graph.nodes[-1].attrs["padding"] == [1, 0]


def test_padded_ceil_mode_pool_drops_a_last_window_that_starts_in_the_padding():
    """PyTorch's (and onnxruntime's) AveragePool: on 5 cells, kernel 2, stride 2, pads 1 and
    ceil_mode give 3 windows, not 4; the divisors count the input cells only."""
    graph = _import_checked(_one_op("AveragePool", ["q"], {
        "kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1,
        "count_include_pad": 0}, {}, (1, 2, 5, 5)))
    pool = graph.nodes[-1]
    assert graph.edges[pool.output].shape == (2, 3, 3)
    assert pool.params["recip"].tolist() == [[4, 2, 2], [2, 1, 1], [2, 1, 1]]  # 1/1, 1/2, 1/4
