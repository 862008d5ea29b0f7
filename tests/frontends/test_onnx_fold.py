"""import_onnx on hand-written QONNX graphs: shape ops folded on (quantized) constants, global
pooling (GlobalMaxPool, ReduceMax, ReduceMean), QONNX Trunc, picking outputs; every import is
checked against qonnx's executor (``graph.meta["source_check"]``)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qfx.frontends.onnx import OnnxImportError, import_onnx_model

_DOM = "qonnx.custom_op.general"


def _model(nodes, inits: dict, x_shape, outs: dict, opset: int = 13):
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", f32, x_shape)],
        [helper.make_tensor_value_info(k, f32, v) for k, v in outs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                   helper.make_opsetid(_DOM, 2)])


def _quant(x: str, out: str, scale: str, bits: str, **attrs):
    attrs = {"signed": 1, "narrow": 0, "rounding_mode": "ROUND", **attrs}
    return helper.make_node("Quant", [x, scale, "z", bits], [out], domain=_DOM, **attrs)


_CONSTS = {"z": np.float32(0), "s6": np.float32(2.0**-6), "s4": np.float32(2.0**-4),
           "s8": np.float32(2.0**-8), "b8": np.float32(8), "b4": np.float32(4),
           "b10": np.float32(10)}


def test_shape_ops_fold_on_quantized_constants():
    rng = np.random.default_rng(0)
    inits = dict(_CONSTS, w=rng.uniform(-1, 1, (3, 4)).astype(np.float32),
                 g=rng.uniform(0.5, 1.5, (4,)).astype(np.float32),
                 shift=rng.uniform(-1, 1, (1, 4, 1)).astype(np.float32),
                 ax=np.array([1, 2], dtype=np.int64), sq=np.array([0, 2], dtype=np.int64),
                 shp=np.array([3, 4], dtype=np.int64))
    nodes = [
        _quant("x", "xq", "s6", "b8"),
        # quantized BN scale (4,) -> Unsqueeze(1, 2) -> (4, 1, 1), as Brevitas reshapes it
        _quant("g", "gq", "s6", "b8"),
        helper.make_node("Unsqueeze", ["gq", "ax"], ["gu"]),
        helper.make_node("Identity", ["gu"], ["gi"]),
        helper.make_node("Mul", ["xq", "gi"], ["m"]),
        # a float shift (1, 4, 1) squeezed to (4,), then unsqueezed back through a Reshape
        helper.make_node("Squeeze", ["shift", "sq"], ["sh4"]),
        helper.make_node("Unsqueeze", ["sh4", "ax"], ["sh"]),
        helper.make_node("Add", ["m", "sh"], ["a"]),
        _quant("a", "aq", "s6", "b8"),
        helper.make_node("GlobalAveragePool", ["aq"], ["p"]),
        helper.make_node("Flatten", ["p"], ["pf"]),
        # bias-free TorchScript linear: Quant(W) -> Transpose -> MatMul; W via Reshape
        helper.make_node("Reshape", ["w", "shp"], ["wr"]),
        _quant("wr", "wq", "s6", "b8", narrow=1),
        helper.make_node("Transpose", ["wq"], ["wt"], perm=[1, 0]),
        helper.make_node("MatMul", ["pf", "wt"], ["y"]),
        _quant("y", "out", "s6", "b8"),
    ]
    model = _model(nodes, inits, [2, 4, 4, 4], {"out": [2, 3]})
    graph = import_onnx_model(model, check=16)
    assert [n.op for n in graph.nodes] == ["input", "batchnorm", "avgpool2d", "flatten",
                                           "dense"]
    assert graph.meta["source_check"] == "qfx == qonnx on 16 random samples"


@pytest.mark.parametrize("op,keep,opset", [("GlobalMaxPool", 1, 13), ("ReduceMax", 0, 13),
                                           ("ReduceMean", 0, 18), ("ReduceMean", 1, 13)])
def test_global_pooling(op, keep, opset):
    inits = dict(_CONSTS, axes=np.array([2, 3], dtype=np.int64))
    if op == "GlobalMaxPool":
        pool = helper.make_node(op, ["xq"], ["p"])
    elif opset >= 18:
        pool = helper.make_node(op, ["xq", "axes"], ["p"], keepdims=keep)
    else:
        pool = helper.make_node(op, ["xq"], ["p"], axes=[-2, -1], keepdims=keep)
    nodes = [_quant("x", "xq", "s6", "b8"), pool, _quant("p", "out", "s8", "b10")]
    out_shape = [2, 3, 1, 1] if keep else [2, 3]
    graph = import_onnx_model(_model(nodes, inits, [2, 3, 4, 2], {"out": out_shape},
                                     opset), check=16)
    # the Quant after an average pool is its output cast; a max pool or a flatten keeps its
    # input's format, so the Quant is a cast node after it
    pooled = ["maxpool2d"] if "Max" in op else ["avgpool2d"]
    tail = ["input"] if "Max" in op or not keep else []
    assert [n.op for n in graph.nodes] == ["input", *pooled, *([] if keep else ["flatten"]),
                                           *tail]
    assert graph.edges[graph.outputs[0]].shape == ((3, 1, 1) if keep else (3,))
    assert graph.meta["source_check"] == "qfx == qonnx on 16 random samples"


def test_reductions_over_other_axes_are_refused_naming_the_node():
    nodes = [_quant("x", "xq", "s6", "b8"),
             helper.make_node("ReduceMean", ["xq"], ["p"], axes=[1], keepdims=1, name="rm")]
    with pytest.raises(OnnxImportError, match=r"^node 'rm' \(ReduceMean\): only a reduction "
                                              r"over H and W"):
        import_onnx_model(_model(nodes, _CONSTS, [2, 3, 4, 4], {"p": [2, 1, 4, 4]}))


@pytest.mark.parametrize("mode", ["FLOOR", "ROUND"])
def test_trunc_is_qonnx_trunc_exactly(mode):
    """TruncAvgPool2d: AveragePool 2x2 (grid 2**-8) -> Trunc(scale 2**-7, so a first
    round-half-even onto 2**-7, then to 2**-4 with ``mode``, saturating at 4 bits)."""
    inits = dict(_CONSTS, s7=np.float32(2.0**-7))
    nodes = [_quant("x", "xq", "s6", "b8"),
             helper.make_node("AveragePool", ["xq"], ["p"], kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Trunc", ["p", "s7", "z", "b10", "s4", "b4"], ["out"],
                              domain=_DOM, rounding_mode=mode, signed=1, narrow=0)]
    graph = import_onnx_model(_model(nodes, inits, [2, 2, 4, 4], {"out": [2, 2, 2, 2]}),
                              check=64)
    assert [n.op for n in graph.nodes] == ["input", "avgpool2d", "input"]
    t = graph.edges[graph.outputs[0]].type
    assert (t.width, t.frac_bits, t.overflow) == (4, 4, "SAT")
    assert graph.meta["source_check"] == "qfx == qonnx on 64 random samples"


def test_picking_an_unknown_output_names_the_available_ones():
    nodes = [_quant("x", "xq", "s6", "b8"), helper.make_node("Relu", ["xq"], ["r"])]
    model = _model(nodes, _CONSTS, [2, 3], {"r": [2, 3], "s6": []})
    graph = import_onnx_model(model, check=0)  # the constant output s6 is dropped
    assert len(graph.outputs) == 1
    with pytest.raises(OnnxImportError, match="'q' is not a computed graph output; "
                                              "available: r$"):
        import_onnx_model(model, outputs=["q"], check=0)


def test_a_float_bias_too_wide_to_hold_exactly_is_rounded_and_said(caplog):
    import logging

    inits = dict(_CONSTS, w=np.full((3, 2), 0.5, dtype=np.float32),
                 bias=np.array([0.75, 2.0**-60 * 3], dtype=np.float32))
    nodes = [_quant("x", "xq", "s6", "b8"),
             _quant("w", "wq", "s6", "b8"),
             helper.make_node("Gemm", ["xq", "wq", "bias"], ["out"], name="fc")]
    with caplog.at_level(logging.WARNING, logger="qfx.frontends.onnx"):
        graph = import_onnx_model(_model(nodes, inits, [2, 3], {"out": [2, 2]}), check=16)
    (msg,) = [r.getMessage() for r in caplog.records if "float bias" in r.getMessage()]
    assert msg.startswith("node 'fc' (Gemm): the float bias (not quantized by a Quant) is "
                          "rounded (half to even) to ap_ufixed<24,0>")
    dense = graph.nodes[-1]
    assert dense.params["bias"].tolist() == [3 * 2**22, 0]  # 0.75 on 2**-24; 3 * 2**-60 -> 0
    # float32 loses the tiny bias in the sum too: qfx == qonnx
    assert graph.meta["source_check"] == "qfx == qonnx on 16 random samples"
