"""concat, upsample, pad and mul, in a graph with two inputs and two outputs: qfx.nn eval ==
executor == C-sim on random and saturating inputs, in both architectures and on both arithmetic
paths (4 compiles for all four ops); the same graph's ONNX and QONNX exports, and its PYNQ
driver's packing, agree with the executor. The zoo U-Net (concat + upsample) fits the Ultra96 by
estimate and C-simulates bit-exactly."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch
from builders import graph_ops_net, zoo_model
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

import qfx
from qfx.backends.hls.layout import read_vectors
from qfx.backends.onnx import build_qonnx_model
from qfx.backends.onnx._common import OnnxExportError
from qfx.backends.onnx.export import build_onnx_model, run_onnx
from qfx.ir.graph import Edge


@pytest.fixture(scope="module")
def ops_graph():
    net, calib = graph_ops_net()
    graph = qfx.freeze(net, (calib[0][:1], calib[1][:1]))
    xs = [torch.cat([torch.randn(4, 2, 4, 4), torch.randn(4, 2, 4, 4) * 16]),
          torch.cat([torch.randn(4, 6), torch.randn(4, 6) * 16])]
    return net, graph, xs


def test_eval_equals_executor_and_the_casts_saturate_and_wrap(ops_graph):
    net, graph, xs = ops_graph
    assert {n.op for n in graph.nodes} >= {"concat", "upsample", "pad", "mul"}
    ref = qfx.run_graph(graph, xs)
    with torch.no_grad():
        outs = net(*xs)
    for name, raw, out in zip(graph.outputs, ref.raw, outs, strict=True):
        assert np.array_equal(raw, graph.edges[name].type.to_int(out).numpy()), name
    assert ref.overflow["cat"] > 0 and ref.overflow["gate"] > 0  # saturated / wrapped


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_csim_is_bit_exact_on_both_paths(ops_graph, io, tmp_path):
    _, graph, xs = ops_graph
    vectors = [x[:3].numpy() for x in xs]
    prj = qfx.export_hls(graph, None, tmp_path / "ops", board="ultra96", io=io, reuse=4,
                         test_vectors=vectors)
    report = qfx.csim(prj, xs, arith="both", opt="-O1")
    assert report.bit_exact and report.mismatches == 0, str(report)
    n_out = sum(int(np.prod(graph.edges[e].shape)) for e in graph.outputs)
    assert report.outputs.shape == (8, n_out)  # every output of every sample compared
    # the PYNQ driver packs the test vectors as the testbench reads them, splits every output
    spec = importlib.util.spec_from_file_location(f"ops_driver_{io}", prj.driver)
    drv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drv)
    assert np.array_equal(drv.pack_floats(*vectors), read_vectors(prj.input_vectors))
    ref = qfx.run_graph(graph, vectors)
    for got, want in zip(drv.split_outputs(read_vectors(prj.expected_vectors)), ref.outputs,
                         strict=True):
        assert np.array_equal(got, want)


def test_onnx_and_qonnx_exports_equal_the_executor(ops_graph):
    _, graph, xs = ops_graph
    x64 = [x.numpy() for x in xs]
    ref = qfx.run_graph(graph, x64).outputs
    for got, want in zip(run_onnx(build_onnx_model(graph), x64), ref, strict=True):
        assert np.array_equal(got, want)
    with pytest.raises(OnnxExportError, match=r"node 'gate' \(mul\): overflow mode AP_WRAP"):
        build_qonnx_model(graph)  # QONNX's Quant always saturates: the wrapping gate is refused
    sat = copy.deepcopy(graph)
    e = sat.edges["gate"]
    sat.edges["gate"] = Edge(e.name, e.shape, e.type.replace(overflow="SAT"))
    x32 = [x.astype(np.float32) for x in x64]
    mw = ModelWrapper(build_qonnx_model(sat, batch_size=8))
    got = execute_onnx(mw, {i.name: x for i, x in zip(mw.graph.input, x32, strict=True)})
    ref32 = qfx.run_graph(sat, [x.astype(np.float64) for x in x32]).outputs
    for o, want in zip(mw.graph.output, ref32, strict=True):
        assert np.array_equal(got[o.name].astype(np.float64), want)
    assert {"Concat", "Resize", "Pad", "Mul"} <= {n.op_type for n in mw.graph.node}


def test_zoo_unet_fits_the_ultra96_and_is_bit_exact(tmp_path):
    model, calib = zoo_model("unet", {"bits": 8})
    graph = qfx.freeze(model, calib[:1])
    assert {"concat", "upsample"} <= {n.op for n in graph.nodes}
    x = torch.cat([torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16) * 16])
    with torch.no_grad():
        expected = graph.edges[graph.outputs[0]].type.to_int(model(x)).numpy()
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], expected)
    # on_budget="error" (the default): the estimate fits (tests/backends/hls/test_autofold.py
    # checks the streaming architecture of every zoo model, this one included)
    prj = qfx.export_hls(graph, None, tmp_path / "unet", board="ultra96", reuse="auto",
                         test_vectors=calib[:2].numpy())
    report = qfx.csim(prj, x, opt="-O1")
    assert report.bit_exact and report.mismatches == 0, str(report)
